import type { Attrs } from '../../../backend.js'
import { allocArray, f16Round, type AnyTypedArray, type DType } from '../../../dtype.js'
import { sizeOf } from '../../../shape.js'
import { takeFloat32 } from '../float32Pool.js'
import type { CpuKernelTable } from '../types.js'

/**
 * Fused kernels of a training step: RMSNorm forward/backward, softmax cross-entropy from integer targets and its
 * gradient, and the Adam/AdamW update. Each replaces a chain of small elementwise and reduction kernels (one
 * array pass and one allocation per link) by one pass, computed in float64 and rounded once per output element,
 * so the float32 results are at least as accurate as the composed chains they replace.
 */

const attr = <T>(attrs: Attrs, k: string): T => attrs[k] as T

/** A float output array (pooled for float32) and the rounding its stores need (float16 lives in a Float32Array). */
function floatOut(dtype: DType, n: number): { values: AnyTypedArray; round: (x: number) => number } {
  const values = dtype === 'float32' ? takeFloat32(n) : allocArray(dtype, n)
  return { values, round: dtype === 'float16' ? f16Round : (x: number) => x }
}

const NO_IGNORE = null

export const fusedKernels = {
  /**
   * RMSNorm over the last axis (Zhang & Sennrich, 2019): y = x · r · gain with r = 1/√(mean(x²) + eps) per row.
   * Outputs [y, r]; r (shape x.shape[:-1]) is saved for the backward. attrs: eps.
   */
  RmsNorm: ([x, gain], attrs) => {
    const eps = attr<number>(attrs, 'eps')
    const d = x!.shape[x!.shape.length - 1]!
    const rows = d === 0 ? 0 : x!.values.length / d
    const xv = x!.values
    const gv = gain!.values
    const y = floatOut(x!.dtype, xv.length)
    const r = floatOut(x!.dtype, sizeOf(x!.shape.slice(0, -1)))
    const yv = y.values
    for (let row = 0, o = 0; row < rows; row++, o += d) {
      let ss = 0
      for (let j = 0; j < d; j++) {
        const v = xv[o + j]!
        ss += v * v
      }
      const rs = 1 / Math.sqrt(ss / d + eps)
      r.values[row] = r.round(rs)
      for (let j = 0; j < d; j++) yv[o + j] = y.round(xv[o + j]! * rs * gv[j]!)
    }
    if (d === 0) r.values.fill(r.round(1 / Math.sqrt(eps)))
    return [
      { values: yv, shape: x!.shape, dtype: x!.dtype },
      { values: r.values, shape: x!.shape.slice(0, -1), dtype: x!.dtype },
    ]
  },
  /**
   * RMSNorm's backward in one pass per row: with s = Σ_k gain_k·dy_k·x_k,
   * dx_j = r·gain_j·dy_j − (r³/D)·s·x_j and dgain_j = Σ_rows dy_j·x_j·r. Inputs [dy, x, gain, r], outputs [dx, dgain].
   */
  RmsNormGrad: ([dy, x, gain, rstd]) => {
    const d = x!.shape[x!.shape.length - 1]!
    const rows = d === 0 ? 0 : x!.values.length / d
    const xv = x!.values
    const dv = dy!.values
    const gv = gain!.values
    const rv = rstd!.values
    const dx = floatOut(x!.dtype, xv.length)
    const dxv = dx.values
    const acc = new Float64Array(d)
    for (let row = 0, o = 0; row < rows; row++, o += d) {
      const r = rv[row]!
      let s = 0
      for (let j = 0; j < d; j++) {
        const xd = xv[o + j]! * dv[o + j]!
        s += gv[j]! * xd
        acc[j] = acc[j]! + xd * r
      }
      const c = (r * r * r * s) / d
      for (let j = 0; j < d; j++) dxv[o + j] = dx.round(r * gv[j]! * dv[o + j]! - c * xv[o + j]!)
    }
    const dg = floatOut(gain!.dtype, d)
    for (let j = 0; j < d; j++) dg.values[j] = dg.round(acc[j]!)
    return [
      { values: dxv, shape: x!.shape, dtype: x!.dtype },
      { values: dg.values, shape: gain!.shape, dtype: gain!.dtype },
    ]
  },
  /**
   * Softmax cross-entropy from logits [..., V] and int32 targets [...]: loss_i = lse_i − x_i[t_i], with the
   * max-shifted log-sum-exp accumulated in float64. Rows whose target equals `ignoreIndex` add nothing (and do not
   * count toward the mean). Outputs [loss, lse]: loss per row ('none'), or summed / averaged to a scalar.
   * attrs: reduction ('none' | 'sum' | 'mean'), ignoreIndex (number or null). Targets are in range (the op checks).
   */
  CrossEntropy: ([logits, targets], attrs) => {
    const reduction = attr<'none' | 'sum' | 'mean'>(attrs, 'reduction')
    const ignore = attr<number | null>(attrs, 'ignoreIndex') ?? NO_IGNORE
    const v = logits!.shape[logits!.shape.length - 1]!
    const xv = logits!.values
    const tv = targets!.values
    const rows = tv.length
    const lse = floatOut(logits!.dtype, rows)
    const per = reduction === 'none' ? floatOut(logits!.dtype, rows) : undefined
    let total = 0
    let count = 0
    for (let row = 0, o = 0; row < rows; row++, o += v) {
      let m = -Infinity
      for (let j = 0; j < v; j++) {
        const e = xv[o + j]!
        if (e > m || e !== e) m = e
      }
      let s = 0
      if (m === m && Math.abs(m) !== Infinity) for (let j = 0; j < v; j++) s += Math.exp(xv[o + j]! - m)
      else s = m === -Infinity ? 0 : NaN
      const l = m + Math.log(s)
      lse.values[row] = lse.round(l)
      const t = tv[row]!
      const loss = ignore !== null && t === ignore ? 0 : t >= 0 && t < v ? l - xv[o + t]! : NaN
      if (!(ignore !== null && t === ignore)) count++
      if (per) per.values[row] = per.round(loss)
      else total += loss
    }
    const outShape = reduction === 'none' ? targets!.shape : []
    let values: AnyTypedArray
    if (per) values = per.values
    else {
      const r = floatOut(logits!.dtype, 1)
      r.values[0] = r.round(reduction === 'mean' ? total / count : total)
      values = r.values
    }
    return [
      { values, shape: outShape, dtype: logits!.dtype },
      { values: lse.values, shape: targets!.shape, dtype: logits!.dtype },
    ]
  },
  /**
   * Cross-entropy's gradient in one pass: dlogits_ij = (exp(x_ij − lse_i) − [j = t_i]) · g_i, with g_i the
   * cotangent of row i (the scalar one for 'sum', divided by the counted rows for 'mean'); 0 on ignored rows.
   * Inputs [g, logits, targets, lse]; attrs as CrossEntropy.
   */
  CrossEntropyGrad: ([g, logits, targets, lse], attrs) => {
    const reduction = attr<'none' | 'sum' | 'mean'>(attrs, 'reduction')
    const ignore = attr<number | null>(attrs, 'ignoreIndex') ?? NO_IGNORE
    const v = logits!.shape[logits!.shape.length - 1]!
    const xv = logits!.values
    const tv = targets!.values
    const lv = lse!.values
    const gv = g!.values
    const rows = tv.length
    let scale = reduction === 'none' ? 0 : gv[0]!
    if (reduction === 'mean') {
      let count = 0
      for (let row = 0; row < rows; row++) if (!(ignore !== null && tv[row] === ignore)) count++
      scale /= count
    }
    const out = floatOut(logits!.dtype, xv.length)
    const ov = out.values
    for (let row = 0, o = 0; row < rows; row++, o += v) {
      const t = tv[row]!
      if (ignore !== null && t === ignore) {
        ov.fill(0, o, o + v)
        continue
      }
      const gr = reduction === 'none' ? gv[row]! : scale
      const l = lv[row]!
      for (let j = 0; j < v; j++) ov[o + j] = out.round((Math.exp(xv[o + j]! - l) - (j === t ? 1 : 0)) * gr)
    }
    return { values: ov, shape: logits!.shape, dtype: logits!.dtype }
  },
  /**
   * One Adam / AdamW step per element (Kingma & Ba, 2015, Algorithm 1; decoupled decay of Loshchilov & Hutter,
   * 2019, as PyTorch's AdamW): inputs [p, g, m, v], outputs [p′, m′, v′]. attrs: lr, beta1, beta2, eps,
   * weightDecay, decoupled (AdamW) and c1 = 1/(1 − β1^t), c2 = 1/(1 − β2^t) (the bias corrections of step t).
   */
  AdamUpdate: ([p, g, m, v], attrs) => {
    const lr = attr<number>(attrs, 'lr')
    const b1 = attr<number>(attrs, 'beta1')
    const b2 = attr<number>(attrs, 'beta2')
    const eps = attr<number>(attrs, 'eps')
    const wd = attr<number>(attrs, 'weightDecay')
    const decoupled = attr<boolean>(attrs, 'decoupled')
    const c1 = attr<number>(attrs, 'c1')
    const c2 = attr<number>(attrs, 'c2')
    const n = p!.values.length
    const pv = p!.values
    const gv = g!.values
    const mv = m!.values
    const vv = v!.values
    const po = floatOut(p!.dtype, n)
    const mo = floatOut(p!.dtype, n)
    const vo = floatOut(p!.dtype, n)
    const P = po.values
    const M = mo.values
    const V = vo.values
    const a1 = 1 - b1
    const a2 = 1 - b2
    const keep = decoupled ? 1 - lr * wd : 1
    const l2 = decoupled ? 0 : wd
    const round = po.round
    for (let i = 0; i < n; i++) {
      const pi = pv[i]!
      const gi = gv[i]! + l2 * pi
      const mi = round(b1 * mv[i]! + a1 * gi)
      const vi = round(b2 * vv[i]! + a2 * gi * gi)
      M[i] = mi
      V[i] = vi
      P[i] = round(pi * keep - (lr * (mi * c1)) / (Math.sqrt(vi * c2) + eps))
    }
    return [
      { values: P, shape: p!.shape, dtype: p!.dtype },
      { values: M, shape: p!.shape, dtype: p!.dtype },
      { values: V, shape: p!.shape, dtype: p!.dtype },
    ]
  },
} satisfies Partial<CpuKernelTable>
