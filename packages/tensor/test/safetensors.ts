import t, { type Test } from 'tap'
import { either as E } from 'fp-ts'
import {
  ArgumentError,
  DisposedError,
  ParseError,
  ValueError,
  loadSafetensors,
  memory,
  parseSafetensors,
  parseSafetensorsHeader,
  saveSafetensors,
  tensor,
  type Tensor,
} from '@heed/tensor'

/** A file laid out by hand: u64 LE header length, the header text as given, then `data`. */
function file(header: string, data: Uint8Array = new Uint8Array(0), headerLength?: number): Uint8Array {
  const h = new TextEncoder().encode(header)
  const out = new Uint8Array(8 + h.length + data.length)
  const v = new DataView(out.buffer)
  const n = headerLength ?? h.length
  v.setUint32(0, n % 2 ** 32, true)
  v.setUint32(4, Math.floor(n / 2 ** 32), true)
  out.set(h, 8)
  out.set(data, 8 + h.length)
  return out
}

const vals = (x: Tensor | undefined): number[] => Array.from(x!.dataSync())
const disposeAll = (r: Record<string, Tensor>) => Object.values(r).forEach(x => x.dispose())

/** Expect a Left(ParseError) whose message matches `re`. */
function expectLeft(t: Test, bytes: Uint8Array, re: RegExp, msg: string): void {
  const r = parseSafetensors(bytes)
  if (E.isRight(r)) {
    disposeAll(r.right)
    t.fail(`${msg}: parsed, expected a ParseError`)
    return
  }
  t.ok(r.left instanceof ParseError, `${msg}: ParseError`)
  t.match(r.left.message, re, `${msg}: ${r.left.message}`)
}

t.test('reads a hand-laid file with every dtype', async t => {
  const base = memory().tensors
  // Data buffer, little-endian, row-major, offsets as in the header below.
  const data = new Uint8Array(92)
  const v = new DataView(data.buffer)
  ;[1.5, -2, 3.25, 1e-3].forEach((x, i) => v.setFloat32(0 + 4 * i, x, true)) // f32 [2,2] @ 0..16
  ;[-7, 2 ** 31 - 1].forEach((x, i) => v.setInt32(16 + 4 * i, x, true)) // i32 [2] @ 16..24
  ;[0x3c00, 0xc000, 0x7bff].forEach((x, i) => v.setUint16(24 + 2 * i, x, true)) // f16 [3] @ 24..30: 1, -2, 65504
  ;[0x3f80, 0x4049].forEach((x, i) => v.setUint16(30 + 2 * i, x, true)) // bf16 [2] @ 30..34: 1, 3.140625
  ;[1, 0, 1].forEach((x, i) => v.setUint8(34 + i, x)) // bool [3] @ 34..37
  v.setUint8(37, 200) // u8 [1] @ 37..38
  v.setInt8(38, -100) // i8 [1] @ 38..39
  v.setInt16(39, -30000, true) // i16 [1] @ 39..41
  v.setUint16(41, 65535, true) // u16 [1] @ 41..43
  v.setUint32(43, 4000000000, true) // u32 [1] @ 43..47
  v.setBigInt64(47, -123456789n, true) // i64 [1] @ 47..55
  v.setBigUint64(55, 4294967295n, true) // u64 [1] @ 55..63
  v.setFloat64(63, Math.PI, true) // f64 [1] @ 63..71
  // scalar f32 [] @ 71..75, empty f32 [0, 3] @ 75..75, u8 [17] @ 75..92
  v.setFloat32(71, 42, true)
  for (let i = 0; i < 17; i++) v.setUint8(75 + i, i)
  const header =
    '{"__metadata__":{"format":"pt","note":"hand-made"},' +
    '"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},' +
    '"b":{"dtype":"I32","shape":[2],"data_offsets":[16,24]},' +
    '"c":{"dtype":"F16","shape":[3],"data_offsets":[24,30]},' +
    '"d":{"dtype":"BF16","shape":[2],"data_offsets":[30,34]},' +
    '"e":{"dtype":"BOOL","shape":[3],"data_offsets":[34,37]},' +
    '"f":{"dtype":"U8","shape":[1],"data_offsets":[37,38]},' +
    '"g":{"dtype":"I8","shape":[1],"data_offsets":[38,39]},' +
    '"h":{"dtype":"I16","shape":[1],"data_offsets":[39,41]},' +
    '"i":{"dtype":"U16","shape":[1],"data_offsets":[41,43]},' +
    '"j":{"dtype":"U32","shape":[1],"data_offsets":[43,47]},' +
    '"k":{"dtype":"I64","shape":[1],"data_offsets":[47,55]},' +
    '"l":{"dtype":"U64","shape":[1],"data_offsets":[55,63]},' +
    '"m":{"dtype":"F64","shape":[1],"data_offsets":[63,71]},' +
    '"scalar":{"dtype":"F32","shape":[],"data_offsets":[71,75]},' +
    '"empty":{"dtype":"F32","shape":[0,3],"data_offsets":[75,75]},' +
    '"z":{"dtype":"U8","shape":[17],"data_offsets":[75,92]}}   '
  const bytes = file(header, data)
  const r = loadSafetensors(bytes)
  t.same(Object.keys(r).sort(), ['a', 'b', 'c', 'd', 'e', 'empty', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'scalar', 'z'])
  t.same([r['a']!.dtype, r['a']!.shape], ['float32', [2, 2]])
  t.same(vals(r['a']), [1.5, -2, 3.25, Math.fround(1e-3)])
  t.same([r['b']!.dtype, vals(r['b'])], ['int32', [-7, 2 ** 31 - 1]])
  t.same([r['c']!.dtype, vals(r['c'])], ['float16', [1, -2, 65504]])
  t.same([r['d']!.dtype, vals(r['d'])], ['float32', [1, 3.140625]])
  t.same([r['e']!.dtype, vals(r['e'])], ['bool', [1, 0, 1]])
  t.same([r['f']!.dtype, vals(r['f'])], ['uint32', [200]])
  t.same([r['g']!.dtype, vals(r['g'])], ['int32', [-100]])
  t.same([r['h']!.dtype, vals(r['h'])], ['int32', [-30000]])
  t.same([r['i']!.dtype, vals(r['i'])], ['uint32', [65535]])
  t.same([r['j']!.dtype, vals(r['j'])], ['uint32', [4000000000]])
  t.same([r['k']!.dtype, vals(r['k'])], ['int32', [-123456789]])
  t.same([r['l']!.dtype, vals(r['l'])], ['uint32', [4294967295]])
  t.same([r['m']!.dtype, vals(r['m'])], ['float64', [Math.PI]])
  t.same([r['scalar']!.shape, vals(r['scalar'])], [[], [42]])
  t.same(r['empty']!.shape, [0, 3])
  t.same(vals(r['z']), Array.from({ length: 17 }, (_, i) => i))
  const h = parseSafetensorsHeader(bytes)
  t.ok(E.isRight(h))
  if (E.isRight(h)) {
    t.same(h.right.metadata, { format: 'pt', note: 'hand-made' })
    t.equal(h.right.dataStart, 8 + new TextEncoder().encode(header).length)
    t.same(h.right.entries.map(e => e.name).slice(0, 3), ['a', 'b', 'c'], 'entries in header order')
  }
  disposeAll(r)
  // A view into a larger buffer (byteOffset ≠ 0) reads the same.
  const big = new Uint8Array(bytes.length + 5)
  big.set(bytes, 3)
  const r2 = loadSafetensors(big.subarray(3, 3 + bytes.length))
  t.same(vals(r2['a']), [1.5, -2, 3.25, Math.fround(1e-3)])
  disposeAll(r2)
  t.equal(memory().tensors, base, 'no leaked tensors')
})

t.test('round trips through saveSafetensors', async t => {
  const base = memory().tensors
  const src = {
    'layer.0.weight': tensor([[1, -2.5, 3], [4, 5e-8, -6e30]], [2, 3], 'float32'),
    bias: tensor([0.1, 1e-300, -Math.E], [3], 'float64'),
    half: tensor([1, 0.5, -65504, 1e-4], [4], 'float16'),
    ids: tensor([-1, 0, 2147483647], [3], 'int32'),
    u: tensor([0, 4294967295], [2], 'uint32'),
    mask: tensor([true, false, true], [3], 'bool'),
    s: tensor(7, [], 'float32'),
    empty: tensor([], [0], 'float32'),
  }
  // JSON.parse makes "__proto__" an own data property (an object literal would set the prototype instead).
  const bytes = await saveSafetensors(src, JSON.parse('{"format":"heed","__proto__":"x"}') as Record<string, string>)
  t.equal(new DataView(bytes.buffer).getUint32(0, true) % 8, 0, 'header padded to 8 bytes')
  const back = loadSafetensors(bytes)
  for (const [k, x] of Object.entries(src)) {
    t.same([back[k]!.dtype, back[k]!.shape], [x.dtype, x.shape], `${k}: dtype and shape`)
    t.same(vals(back[k]), vals(x), `${k}: values`)
  }
  const h = parseSafetensorsHeader(bytes)
  const meta = E.isRight(h) ? h.right.metadata : {}
  t.same(Object.entries(meta), [['format', 'heed'], ['__proto__', 'x']], 'metadata round trips, "__proto__" as data')
  t.equal(Object.getPrototypeOf(meta), Object.prototype, 'prototype untouched')
  const none = loadSafetensors(await saveSafetensors({}))
  t.same(Object.keys(none), [], 'an empty file round trips')
  disposeAll(back)
  disposeAll(src)
  t.equal(memory().tensors, base, 'no leaked tensors')
})

t.test('malformed files are Left(ParseError)', async t => {
  const base = memory().tensors
  const ok4 = new Uint8Array(4)
  const entry = (fields: string) => `{"x":{${fields}}}`
  expectLeft(t, new Uint8Array(5), /header length.*at least 8 bytes/, 'short file')
  expectLeft(t, file('{}', undefined, 1000), /header length.*past the end/, 'header length beyond file')
  expectLeft(t, file('{}', undefined, 2 ** 40), /header length/, 'huge header length (high word set)')
  expectLeft(t, file('{"x":', ok4), /header.*not JSON/, 'invalid JSON')
  expectLeft(t, file('[1,2]', ok4), /header.*JSON object.*an array/, 'not an object')
  expectLeft(t, (() => { const f = file('{"a" }'); f[10] = 0xff; return f })(), /invalid UTF-8/, 'invalid UTF-8')
  expectLeft(t, file('{"x":3}', ok4), /tensor "x".*an object/, 'entry is not an object')
  expectLeft(t, file(entry('"shape":[1],"data_offsets":[0,4]'), ok4), /tensor "x"\.dtype.*missing/, 'missing dtype')
  expectLeft(t, file(entry('"dtype":"F32","data_offsets":[0,4]'), ok4), /tensor "x"\.shape.*missing/, 'missing shape')
  expectLeft(t, file(entry('"dtype":"F32","shape":[1]'), ok4), /tensor "x"\.data_offsets.*missing/, 'missing offsets')
  expectLeft(t, file(entry('"dtype":"Q7","shape":[1],"data_offsets":[0,4]'), ok4), /tensor "x"\.dtype: unknown dtype.*Q7/, 'unknown dtype')
  expectLeft(t, file(entry('"dtype":"C64","shape":[1],"data_offsets":[0,8]'), new Uint8Array(8)), /tensor "x"\.dtype: unsupported dtype: complex64 has no heed dtype/, 'C64 rejected with the reason')
  expectLeft(t, file('{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', ok4), /key "x" appears twice/, 'duplicated tensor name')
  expectLeft(t, file(entry('"dtype":"F32","dtype":"I32","shape":[1],"data_offsets":[0,4]'), ok4), /key "dtype" appears twice/, 'duplicated field')
  expectLeft(t, file(entry('"dtype":"BOOL","shape":[2],"data_offsets":[0,2]'), Uint8Array.from([1, 7])), /tensor "x"\[1\].*BOOL byte is neither 0 nor 1/, 'BOOL byte 7')
  expectLeft(t, file(entry('"dtype":"F32","shape":[-1],"data_offsets":[0,4]'), ok4), /tensor "x"\.shape/, 'negative dim')
  expectLeft(t, file(entry('"dtype":"F32","shape":[1.5],"data_offsets":[0,4]'), ok4), /tensor "x"\.shape/, 'fractional dim')
  expectLeft(t, file(entry('"dtype":"F32","shape":[1],"data_offsets":[0]'), ok4), /data_offsets.*\[begin, end\]/, 'one offset')
  expectLeft(t, file(entry('"dtype":"F32","shape":[1],"data_offsets":[4,0]'), ok4), /begin ≤ end/, 'reversed offsets')
  expectLeft(t, file(entry('"dtype":"F32","shape":[1],"data_offsets":[0,8]'), ok4), /past the end of the file/, 'offsets out of bounds')
  expectLeft(t, file(entry('"dtype":"F32","shape":[2],"data_offsets":[0,4]'), ok4), /8 bytes for F32\[2\].*got 4 bytes/, 'size mismatch')
  expectLeft(
    t,
    file('{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', new Uint8Array(8)),
    /tensor "y".*overlaps/,
    'overlapping tensors',
  )
  expectLeft(
    t,
    file('{"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', new Uint8Array(8)),
    /tensor "x".*hole/,
    'hole before a tensor',
  )
  expectLeft(t, file(entry('"dtype":"F32","shape":[1],"data_offsets":[0,4]'), new Uint8Array(6)), /trailing bytes/, 'trailing bytes')
  expectLeft(t, file('{"__metadata__":{"a":1}}'), /__metadata__\.a.*string/, 'non-string metadata')
  expectLeft(t, file('{"__metadata__":[]}'), /__metadata__.*object/, 'metadata not an object')
  const i64 = new Uint8Array(8)
  new DataView(i64.buffer).setBigInt64(0, 2n ** 40n, true)
  expectLeft(t, file(entry('"dtype":"I64","shape":[1],"data_offsets":[0,8]'), i64), /tensor "x"\[0\].*int64: 'float64'.*int32 range/, 'I64 out of int32 range, naming the way to read it')
  expectLeft(t, 'nope' as unknown as Uint8Array, /Uint8Array/, 'not bytes')
  t.throws(() => loadSafetensors(new Uint8Array(3)), ParseError, 'loadSafetensors throws the ParseError')
  t.equal(memory().tensors, base, 'nothing allocated for malformed files')
})

t.test('the options of a load are checked, and thrown: they are the program\'s, not the file\'s', async t => {
  const good = await saveSafetensors({ a: tensor([1, 2]) })
  for (const [f, op] of [
    [(o: never) => loadSafetensors(good, o), 'loadSafetensors'],
    [(o: never) => parseSafetensors(good, o), 'parseSafetensors'],
  ] as const) {
    t.throws(() => f({ int46: 'float64' } as never), { name: 'ArgumentError', op, arg: 'int46', message: /did you mean int64\?/ })
    t.throws(() => f({ int64: 'bigint' } as never), { name: 'ArgumentError', op, arg: 'int64' })
    t.throws(() => f({ backend: 1 } as never), { name: 'ArgumentError', op, arg: 'backend' })
    t.throws(() => f(null as never), { name: 'ArgumentError', op, arg: 'opts' })
  }
  disposeAll(loadSafetensors(good, { int64: 'int32', backend: 'cpu' }))
})

t.test('saveSafetensors validation', async t => {
  const x = tensor([1], [1])
  await t.rejects(saveSafetensors({ __metadata__: x }), ValueError)
  await t.rejects(saveSafetensors({ a: 3 as unknown as Tensor }), ArgumentError)
  await t.rejects(saveSafetensors({ a: x }, { k: 1 as unknown as string }), ArgumentError)
  await t.rejects(saveSafetensors(null as unknown as Record<string, Tensor>), ArgumentError)
  x.dispose()
  await t.rejects(saveSafetensors({ a: x }), DisposedError)
})

t.test('int64 beyond 32 bits, FP8, and NaN payloads through float16/bfloat16', async t => {
  const entry = (dtype: string, shape: number[], n: number) => `{"x":{"dtype":"${dtype}","shape":[${shape}],"data_offsets":[0,${n}]}}`
  // I64/U64 as float64: exact up to 2^53
  const i64 = new Uint8Array(24)
  const v = new DataView(i64.buffer)
  ;[2n ** 40n, -(2n ** 53n), 123n].forEach((x, i) => v.setBigInt64(8 * i, x, true))
  const r = loadSafetensors(file(entry('I64', [3], 24), i64), { int64: 'float64' })
  t.same([r['x']!.dtype, vals(r['x'])], ['float64', [2 ** 40, -(2 ** 53), 123]])
  disposeAll(r)
  const u64 = new Uint8Array(8)
  new DataView(u64.buffer).setBigUint64(0, 2n ** 60n, true)
  expectLeftWith(t, file(entry('U64', [1], 8), u64), { int64: 'float64' }, /beyond 2\^53/, 'U64 beyond 2^53 as float64')
  // FP8 (OCP): E4M3 0x38 = 1, 0x7e = 448, 0x7f = NaN, 0x01 = 2^-9; E5M2 0x3c = 1, 0x7b = 57344, 0x7c = ∞, 0x7d = NaN
  const f8 = loadSafetensors(file('{"a":{"dtype":"F8_E4M3","shape":[5],"data_offsets":[0,5]},"b":{"dtype":"F8_E5M2","shape":[5],"data_offsets":[5,10]}}', Uint8Array.from([0x38, 0x7e, 0x7f, 0x01, 0xb8, 0x3c, 0x7b, 0x7c, 0x7d, 0xfc])))
  t.same(vals(f8['a']), [1, 448, NaN, 2 ** -9, -1], 'F8_E4M3')
  t.same(vals(f8['b']), [1, 57344, Infinity, NaN, -Infinity], 'F8_E5M2')
  disposeAll(f8)
  // NaN payloads: a float16 NaN with payload 0x155 and a bfloat16 NaN with payload 0x2a come back bit for bit
  const h = new Uint8Array(4)
  new DataView(h.buffer).setUint16(0, 0xfd55, true)
  new DataView(h.buffer).setUint16(2, 0x7c01, true)
  const back = await saveSafetensors(loadSafetensors(file(entry('F16', [2], 4), h)))
  const hdr = parseSafetensorsHeader(back)
  t.ok(E.isRight(hdr))
  const at = E.isRight(hdr) ? hdr.right.entries[0]!.begin : 0
  const dv = new DataView(back.buffer, back.byteOffset)
  t.same([dv.getUint16(at, true), dv.getUint16(at + 2, true)], [0xfd55, 0x7c01], 'float16 NaN payloads survive load and save')
  const b = new Uint8Array(2)
  new DataView(b.buffer).setUint16(0, 0x7f2a, true)
  const bf = loadSafetensors(file(entry('BF16', [1], 2), b))
  const out = await saveSafetensors(bf)
  const hb = parseSafetensorsHeader(out)
  const bt = E.isRight(hb) ? hb.right.entries[0]!.begin : 0
  t.equal(new DataView(out.buffer, out.byteOffset).getUint32(bt, true), 0x7f2a0000, 'bfloat16 NaN payload survives (written back as F32 bits)')
  disposeAll(bf)
})

function expectLeftWith(t: Test, bytes: Uint8Array, opts: { int64?: 'int32' | 'float64' }, re: RegExp, msg: string): void {
  const r = parseSafetensors(bytes, opts)
  if (E.isRight(r)) {
    disposeAll(r.right)
    t.fail(`${msg}: parsed, expected a ParseError`)
    return
  }
  t.match(r.left.message, re, `${msg}: ${r.left.message}`)
}
