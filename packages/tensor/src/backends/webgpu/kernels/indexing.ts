import type { Attrs } from '../../../backend.js'
import type { DType } from '../../../dtype.js'
import { sizeOf, type Shape } from '../../../shape.js'
import { computeType, type StorageType } from '../dtypes.js'
import type { GpuTensor, WebGpuContext, WebGpuKernel, WebGpuKernelTable } from '../types.js'
import { bindings, enableF16, flagIndex, grid, load, MATH, Uniforms, WG } from '../wgsl.js'
import { main, params, zeroOf } from './shape.js'

const attr = <T>(attrs: Attrs, k: string): T => attrs[k] as T

function around(shape: Shape, axis: number): { outer: number; n: number; inner: number } {
  return { outer: sizeOf(shape.slice(0, axis)), n: shape[axis]!, inner: sizeOf(shape.slice(axis + 1)) }
}

/**
 * Index `j` of binding `I` as u32. int32 indices are reinterpreted, so a negative one becomes huge and fails the
 * same `< n` test as one past the end. Indices computed on the device are not known to the host before dispatch,
 * so an out-of-range one must neither crash nor read or write out of bounds: it gathers zeros, adds nothing in
 * ScatterAdd and sets no bit in OneHot, and flags its position (`ctx.indexCheck`) so that the next read raises
 * the op's ValueError, the error the CPU raises before dispatch.
 */
const index = (j: string, st: StorageType): string => (st === 'u32' ? `I[${j}]` : `bitcast<u32>(I[${j}])`)

export const indexingKernels = {
  Gather: (ctx, [x, idx], attrs) => {
    const axis = attr<number>(attrs, 'axis')
    const { outer, n, inner } = around(x!.shape, axis)
    const m = sizeOf(idx!.shape)
    const out = ctx.output(x!.dtype, [...x!.shape.slice(0, axis), ...idx!.shape, ...x!.shape.slice(axis + 1)])
    const total = outer * m * inner
    if (total === 0) return out
    const st = out.data.st
    const { flags, slot } = ctx.indexCheck({ op: 'gather', arg: 'indices', n, what: `dim ${axis} of [${x!.shape.join(',')}]` })
    const { struct, buffer } = params(['n', 'm', 'axisLen', 'inner', 'slot'], new Uniforms().u32(total, m, n, inner, slot))
    const code = (): string => `${enableF16(ctx)}${struct}${bindings([x!, idx!], [out], ['X', 'I'], ['Y'], { checked: true })}
${main(`  let r = i % p.inner;
  let t = i / p.inner;
  let j = t % p.m;
  let o = t / p.m;
  let k = ${index('j', idx!.data.st)};
  if (k < p.axisLen) { Y[i] = X[(o * p.axisLen + k) * p.inner + r]; } else { Y[i] = ${zeroOf(st)}; ${flagIndex('j')} }`)}`
    ctx.dispatch({ key: `idx:gather:${st}:${idx!.data.st}:f16=${ctx.f16}`, code, inputs: [x!, idx!], outputs: [out, flags], uniforms: buffer, workgroups: grid(total) })
    return out
  },

  /**
   * WGSL has no float atomics, and atomics would make the summation order (so the result) vary run to run.
   * Each output element instead walks the indices in order and adds the updates that land on it, which is the
   * CPU's order exactly: x first, then updates by increasing index position. The cost is O(x.size · m), fine
   * for gradients of slices and moderate gathers; a sort-by-index pass would be the scheme for huge embeddings.
   */
  ScatterAdd: (ctx, [x, idx, upd], attrs) => {
    const axis = attr<number>(attrs, 'axis')
    const { n, inner } = around(x!.shape, axis)
    const m = sizeOf(idx!.shape)
    const out = ctx.output(x!.dtype, x!.shape)
    const total = sizeOf(x!.shape)
    if (total === 0) return out
    const st = out.data.st
    const ct = computeType(x!.dtype)
    const { flags, slot } = ctx.indexCheck({ op: 'scatterAdd', arg: 'indices', n, what: `dim ${axis} of [${x!.shape.join(',')}]` })
    const { struct, buffer } = params(['n', 'm', 'axisLen', 'inner', 'slot'], new Uniforms().u32(total, m, n, inner, slot))
    const code = (): string => `${enableF16(ctx)}${struct}${bindings([x!, idx!, upd!], [out], ['X', 'I', 'U'], ['Y'], { checked: true })}
${main(`  let r = i % p.inner;
  let t = i / p.inner;
  let row = t % p.axisLen;
  let o = t / p.axisLen;
  var acc: ${ct} = ${load('X', 'i', x!.data.st, x!.dtype)};
  for (var j = 0u; j < p.m; j++) {
    let k = ${index('j', idx!.data.st)};
    if (k == row) { acc += ${load('U', '(o * p.m + j) * p.inner + r', upd!.data.st, upd!.dtype)}; }
    // one invocation per index flags it, not every output element
    if (k >= p.axisLen && i == 0u) { ${flagIndex('j')} }
  }
  Y[i] = ${st}(acc);`)}`
    ctx.dispatch({ key: `idx:scatterAdd:${st}${x!.dtype}:${idx!.data.st}:f16=${ctx.f16}`, code, inputs: [x!, idx!, upd!], outputs: [out, flags], uniforms: buffer, workgroups: grid(total) })
    return out
  },

  OneHot: (ctx, [idx], attrs) => {
    const depth = attr<number>(attrs, 'depth')
    const dtype = attr<DType>(attrs, 'dtype')
    const out = ctx.output(dtype, [...idx!.shape, depth])
    const total = sizeOf(out.shape)
    if (total === 0) return out
    const st = out.data.st
    const { flags, slot } = ctx.indexCheck({ op: 'oneHot', arg: 'indices', n: depth, what: 'depth' })
    const { struct, buffer } = params(['n', 'depth', 'slot'], new Uniforms().u32(total, depth, slot))
    const code = (): string => `${enableF16(ctx)}${struct}${bindings([idx!], [out], ['I'], ['Y'], { checked: true })}
${main(`  let c = i % p.depth;
  let k = ${index('i / p.depth', idx!.data.st)};
  Y[i] = select(${zeroOf(st)}, ${st}(1), k == c);
  if (k >= p.depth && c == 0u) { ${flagIndex('i / p.depth')} }`)}`
    ctx.dispatch({ key: `idx:oneHot:${st}:${idx!.data.st}:f16=${ctx.f16}`, code, inputs: [idx!], outputs: [out, flags], uniforms: buffer, workgroups: grid(total) })
    return out
  },

  TopK: (ctx, [x], attrs) => sortedLanes(ctx, x!, attr<number>(attrs, 'axis'), attr<number>(attrs, 'k'), attr<boolean>(attrs, 'largest')),

  Sort: (ctx, [x], attrs) => {
    const axis = attr<number>(attrs, 'axis')
    return sortedLanes(ctx, x!, axis, x!.shape[axis]!, attr<boolean>(attrs, 'descending'))
  },
} satisfies Partial<WebGpuKernelTable>

/**
 * Sort by rank: element j of a lane lands at position rank(j) = #{i : i orders before j}, with "before" the
 * CPU's comparator (ascending or descending, NaN the largest value as in PyTorch, ties by position). That order is total, so
 * ranks are a permutation and the result is the CPU's stable sort exactly, with no merging passes and no
 * cross-invocation writes. A workgroup ranks WG elements of one lane, streaming the lane through workgroup
 * memory a tile at a time; the work is O(n²) per lane but spread over n invocations, which beats a serial
 * per-lane sort for the lane lengths topk and sort see (vocabularies, sequence lengths). TopK keeps ranks < k.
 */
function sortedLanes(ctx: WebGpuContext, x: GpuTensor, axis: number, k: number, descending: boolean): [GpuTensor, GpuTensor] {
  const { outer, n, inner } = around(x.shape, axis)
  const shape = x.shape.map((d, i) => (i === axis ? k : d))
  const values = ctx.output(x.dtype, shape)
  const indices = ctx.output('int32', shape)
  const lanes = outer * inner
  if (sizeOf(shape) === 0) return [values, indices]
  const tiles = Math.ceil(n / WG)
  const ct = computeType(x.dtype)
  const isF = ct === 'f32'
  const { struct, buffer } = params(
    ['lanes', 'len', 'inner', 'k', 'tiles', 'desc'],
    new Uniforms().u32(lanes, n, inner, k, tiles, descending ? 1 : 0),
  )
  const lx = (i: string): string => load('X', i, x.data.st, x.dtype)
  const code = (): string => `${enableF16(ctx)}${struct}${bindings([x], [values, indices], ['X'], ['V', 'J'])}
${MATH}
var<workgroup> tile: array<${ct}, ${WG}>;
// does (a at position i) sort before (b at position j)?
fn before(a: ${ct}, i: u32, b: ${ct}, j: u32) -> bool {
${
  isF
    ? `  let na = is_nan(a);
  let nb = is_nan(b);
  // NaN is the largest value (PyTorch): last ascending, first descending
  if (na || nb) { return select(select(!na, na, p.desc != 0u), i < j, na == nb); }
`
    : ''
}  if (a != b) { return select((a < b), (a > b), p.desc != 0u); }
  return i < j;
}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let w = wid.x + wid.y * nwg.x;
  // uniform across the workgroup, so the barriers below stay in uniform control flow
  if (w >= p.lanes * p.tiles) { return; }
  let lane = w / p.tiles;
  let o = lane / p.inner;
  let r = lane % p.inner;
  let base = o * p.len * p.inner + r;
  let j = (w % p.tiles) * ${WG}u + lid.x;
  let valid = j < p.len;
  var b: ${ct} = ${ct}(0);
  if (valid) { b = ${lx('base + j * p.inner')}; }
  var rank = 0u;
  for (var t = 0u; t < p.tiles; t++) {
    let q = t * ${WG}u + lid.x;
    if (q < p.len) { tile[lid.x] = ${lx('base + q * p.inner')}; }
    workgroupBarrier();
    if (valid) {
      let cnt = min(${WG}u, p.len - t * ${WG}u);
      for (var s = 0u; s < cnt; s++) {
        if (before(tile[s], t * ${WG}u + s, b, j)) { rank++; }
      }
    }
    workgroupBarrier();
  }
  if (valid && rank < p.k) {
    let dst = (o * p.k + rank) * p.inner + r;
    V[dst] = X[base + j * p.inner];
    J[dst] = i32(j);
  }
}
`
  ctx.dispatch({ key: `idx:sort:${x.data.st}${x.dtype}:f16=${ctx.f16}`, code, inputs: [x], outputs: [values, indices], uniforms: buffer, workgroups: grid(lanes * tiles, 1) })
  return [values, indices]
}
