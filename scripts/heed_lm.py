"""heed_lm.py: a heed `transformerLM` checkpoint in PyTorch, and back (run by hand; never by CI).

This is how a heed model moves to PyTorch (to train it on many GPUs with DDP/FSDP, say) and comes back to heed.
`load` reads a safetensors checkpoint written by heed's `saveLM` (or by the trainer) and builds the same model as
an `nn.Module` whose `state_dict()` names are heed's tensor names; `save` writes the weights back in heed's format
(the same names, the `x·W` layout `[in, out]`, the same `__metadata__`), which heed's `loadLM` loads. A heed file
loaded and saved unchanged comes back byte for byte.

The model is heed's, op for op (packages/attention/src/lm/transformerLM.ts and transformerBlock.ts):

    h = embed[ids]                                       embed [vocab, dModel]
    for each block:  h = h + attn(rms(h) · norm1)        pre-norm, no bias in attention
                     h = h + gelu(rms(h) · norm2 · W1 + b1) · W2 + b2       exact-erf GELU
    logits = rms(h) · normF · (embedᵀ if tied else head) head [dModel, vocab]

    rms(x) = x / sqrt(mean(x²) + eps)                    eps from the config (default 1e-6)
    attn:  q = x·Wq, k = x·Wk, v = x·Wv split into heads of headDim = dModel / heads (k, v: kvHeads heads;
           query head i reads kv head i // (heads / kvHeads)); RoPE on q and k at absolute positions
           (base 10000 and half-split pairs (x[i], x[i + D/2]) unless the config says otherwise; angle of pair i
           at position p: p · base^(−2i/D)); softmax(q·kᵀ / sqrt(headDim)) causal; heads concatenated · Wo.

Checkpoint format (see lmCheckpoint.ts): safetensors (8-byte little-endian header length N, N bytes of JSON
`{"__metadata__": {...}, name: {dtype, shape, data_offsets}}` padded with spaces to a multiple of 8, then the
raw little-endian tensor data in name order). Names: `embed`, `blocks.{l}.norm1`, `blocks.{l}.attn.{Wq,Wk,Wv,Wo}`,
`blocks.{l}.norm2`, `blocks.{l}.{W1,b1,W2,b2}`, `normF`, and `head` when untied. `__metadata__` holds JSON strings:
`format` ("heed.transformerLM/1"), `config`, `vocab` (the characters in id order) and, in a training checkpoint,
`training` with the optimizer slots `optimizer.{mu,nu}.{name}` (this script reads the parameters and leaves
the optimizer state behind: `save` writes a parameters-only checkpoint). F32 and F16 (and F64, BF16) are read;
parameters are computed in float32 (or float64 with `dtype=torch.float64`).

The `safetensors` package is not needed (Debian's python3-torch does not bring it): the format is parsed here
with the standard library and torch.

As a module (from this directory, or with scripts/ on sys.path):

    from heed_lm import load, save, encode, decode
    model = load('packages/attention/models/kjv-char.safetensors')
    ids = encode(model, 'In the beginning')
    logits = model(ids)                    # [T, vocab] (or [B, T, vocab] from [B, T] ids)
    ...  # train it like any nn.Module: model.parameters() are heed's tensors
    save(model, 'trained.safetensors')     # heed: loadLM(readFileSync('trained.safetensors'))

Commands (`/usr/bin/python3 scripts/heed_lm.py …`, from the repository root):

    logits CKPT TEXT [--position P]    print the next-character distribution after TEXT (top 5)
    convert IN OUT [--dtype F32|F16]   load IN in PyTorch and save it in heed's format as OUT
    fixture                            regenerate packages/attention/test/fixtures/lm-torch/ (the checkpoints
                                       made by heed through scripts/heed-lm-fixture.ts, the logits PyTorch
                                       computes for fixed prompts, and the round trip PyTorch → heed); checked
                                       by packages/attention/test/lm-torch.ts
    train SPEC.json                    the PyTorch half of `npm run bench -- lm` (bench/lm.ts writes SPEC):
                                       heed's recipe (AdamW, warm-up + cosine, global-norm clipping, the
                                       counter-based data order of lmBatches.ts) from heed's initial parameters;
                                       prints one JSON object
"""
import json
import math
import os
import struct
import subprocess
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

FORMAT = 'heed.transformerLM/1'

# ---- safetensors ------------------------------------------------------------------------------------------------

_DTYPES = {'F64': torch.float64, 'F32': torch.float32, 'F16': torch.float16, 'BF16': torch.bfloat16, 'I32': torch.int32, 'I64': torch.int64, 'U8': torch.uint8}
_NAMES = {v: k for k, v in _DTYPES.items()}


def read_safetensors(data):
    """bytes → ({name: tensor}, {metadata key: string}); tensors in the file's dtype."""
    if len(data) < 8:
        raise ValueError('safetensors: shorter than its 8-byte header length')
    (n,) = struct.unpack('<Q', data[:8])
    if 8 + n > len(data):
        raise ValueError(f'safetensors: header of {n} bytes runs past the end of the file ({len(data)} bytes)')
    header = json.loads(data[8:8 + n].decode('utf-8'))
    meta = header.pop('__metadata__', {}) or {}
    buf = memoryview(data)[8 + n:]
    tensors = {}
    for name, e in header.items():
        dtype = _DTYPES.get(e['dtype'])
        if dtype is None:
            raise ValueError(f'safetensors: tensor {name}: unsupported dtype {e["dtype"]}')
        b, end = e['data_offsets']
        if end > len(buf):
            raise ValueError(f'safetensors: tensor {name} runs past the end of the data')
        t = torch.frombuffer(bytearray(buf[b:end]), dtype=torch.uint8) if end > b else torch.empty(0, dtype=torch.uint8)
        if sys.byteorder != 'little' and t.numel() > 0:  # the file is little-endian
            t = t.view(-1, torch.empty((), dtype=dtype).element_size()).flip(1).reshape(-1)
        tensors[name] = t.view(dtype).reshape(e['shape']).clone()
    return tensors, meta


def write_safetensors(tensors, meta):
    """{name: tensor}, {key: string} → bytes, laid out as heed's writer does (so a heed file round-trips byte for
    byte): `__metadata__` first, tensors in name order, compact JSON, header padded with spaces to 8 bytes."""
    header = {}
    if meta:
        header['__metadata__'] = dict(meta)
    blobs = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        raw = t.view(torch.uint8) if t.numel() > 0 else torch.empty(0, dtype=torch.uint8)
        if sys.byteorder != 'little' and t.numel() > 0:
            raw = raw.view(-1, t.element_size()).flip(1).reshape(-1)
        b = raw.numpy().tobytes() if _has_numpy() else bytes(raw.tolist())
        header[name] = {'dtype': _NAMES[t.dtype], 'shape': list(t.shape), 'data_offsets': [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    js = json.dumps(header, separators=(',', ':'), ensure_ascii=False).encode('utf-8')
    js += b' ' * (-len(js) % 8)
    return struct.pack('<Q', len(js)) + js + b''.join(blobs)


def _has_numpy():
    try:
        import numpy  # noqa: F401
        return True
    except ImportError:
        return False


# ---- the model --------------------------------------------------------------------------------------------------


def rms_norm(x, gain, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * gain


def rope(x, start, base, style):
    """x [B, H, T, D] rotated at positions start … start+T−1 (angles in float64, as heed's tables)."""
    T, D = x.shape[2], x.shape[3]
    h = D // 2
    pos = torch.arange(start, start + T, dtype=torch.float64)
    inv = torch.tensor([base ** (-(2 * i) / D) for i in range(h)], dtype=torch.float64)
    ang = pos[:, None] * inv[None, :]
    cos, sin = ang.cos().to(x.dtype), ang.sin().to(x.dtype)
    if style == 'half':
        x1, x2 = x[..., :h], x[..., h:]
    else:
        x1, x2 = x[..., 0::2], x[..., 1::2]
    r1 = x1 * cos - x2 * sin
    r2 = x2 * cos + x1 * sin
    return torch.cat([r1, r2], -1) if style == 'half' else torch.stack([r1, r2], -1).flatten(-2)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, hd = c['dModel'], c['dModel'] // c['heads']
        self.heads, self.kv_heads, self.head_dim = c['heads'], c['kvHeads'], hd
        self.rope = c['rope']
        self.Wq = nn.Parameter(torch.zeros(d, self.heads * hd))
        self.Wk = nn.Parameter(torch.zeros(d, self.kv_heads * hd))
        self.Wv = nn.Parameter(torch.zeros(d, self.kv_heads * hd))
        self.Wo = nn.Parameter(torch.zeros(self.heads * hd, d))

    def forward(self, x, start):
        B, T, _ = x.shape
        split = lambda y, n: y.view(B, T, n, self.head_dim).transpose(1, 2)
        q, k, v = split(x @ self.Wq, self.heads), split(x @ self.Wk, self.kv_heads), split(x @ self.Wv, self.kv_heads)
        if self.rope is not False:
            base, style = self.rope.get('base', 10000), self.rope.get('style', 'half')
            q, k = rope(q, start, base, style), rope(k, start, base, style)
        g = self.heads // self.kv_heads
        if g > 1:
            k, v = k.repeat_interleave(g, 1), v.repeat_interleave(g, 1)
        s = (q @ k.transpose(-1, -2)) * (1 / math.sqrt(self.head_dim))
        s = s.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float('-inf'))
        o = s.softmax(-1) @ v
        return o.transpose(1, 2).reshape(B, T, self.heads * self.head_dim) @ self.Wo


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, hid = c['dModel'], c['hidden']
        self.eps = c['eps']
        self.attn = Attention(c)
        self.norm1 = nn.Parameter(torch.ones(d))
        self.norm2 = nn.Parameter(torch.ones(d))
        self.W1 = nn.Parameter(torch.zeros(d, hid))
        self.b1 = nn.Parameter(torch.zeros(hid))
        self.W2 = nn.Parameter(torch.zeros(hid, d))
        self.b2 = nn.Parameter(torch.zeros(d))

    def forward(self, x, start):
        h = x + self.attn(rms_norm(x, self.norm1, self.eps), start)
        return h + F.gelu(rms_norm(h, self.norm2, self.eps) @ self.W1 + self.b1) @ self.W2 + self.b2


def full_config(c):
    """heed's TransformerLMConfig with its defaults filled in (as `transformerLM(…).config`)."""
    c = dict(c)
    c.setdefault('kvHeads', c['heads'])
    c.setdefault('hidden', 4 * c['dModel'])
    c.setdefault('tied', True)
    c.setdefault('eps', 1e-6)
    r = c.get('rope', True)
    c['rope'] = {} if r is True or r is None else (False if r is False else dict(r))
    if c['dModel'] % c['heads'] or c['heads'] % c['kvHeads']:
        raise ValueError(f'config: dModel must be a multiple of heads and heads of kvHeads: {c}')
    return c


class HeedLM(nn.Module):
    """heed's transformerLM. `state_dict()` keys are heed's checkpoint names; `forward(ids, position=0)` takes
    int ids [T] or [B, T] and returns float logits [T, vocab] or [B, T, vocab]."""

    def __init__(self, config, vocab=None, meta=None):
        super().__init__()
        c = self.config = full_config(config)
        self.vocab = list(vocab) if vocab is not None else None
        # The metadata strings as read (saved back unchanged, so a file round-trips byte for byte).
        self.meta = dict(meta or {})
        self.embed = nn.Parameter(torch.zeros(c['vocab'], c['dModel']))
        self.blocks = nn.ModuleList(Block(c) for _ in range(c['layers']))
        self.normF = nn.Parameter(torch.ones(c['dModel']))
        if not c['tied']:
            self.head = nn.Parameter(torch.zeros(c['dModel'], c['vocab']))

    def forward(self, ids, position=0):
        unbatched = ids.dim() == 1
        if unbatched:
            ids = ids[None]
        h = self.embed[ids.long()]
        for b in self.blocks:
            h = b(h, position)
        h = rms_norm(h, self.normF, self.config['eps'])
        logits = h @ (self.embed.t() if self.config['tied'] else self.head)
        return logits[0] if unbatched else logits


def load(path_or_bytes, dtype=torch.float32):
    """A heed checkpoint (path or bytes) → HeedLM (parameters in `dtype`; optimizer slots are not read)."""
    data = open(path_or_bytes, 'rb').read() if isinstance(path_or_bytes, (str, os.PathLike)) else bytes(path_or_bytes)
    tensors, meta = read_safetensors(data)
    if meta.get('format') != FORMAT:
        raise ValueError(f'not a heed language-model checkpoint: __metadata__.format is {meta.get("format")!r}, expected {FORMAT!r}')
    config, vocab = json.loads(meta['config']), json.loads(meta['vocab'])
    if len(vocab) != config['vocab']:
        raise ValueError(f'__metadata__.vocab has {len(vocab)} characters, config.vocab is {config["vocab"]}')
    model = HeedLM(config, vocab, {k: v for k, v in meta.items() if k in ('format', 'config', 'vocab')})
    params = {k: v for k, v in tensors.items() if not k.startswith('optimizer.')}
    want = model.state_dict()
    missing, extra = sorted(set(want) - set(params)), sorted(set(params) - set(want))
    if missing or extra:
        raise ValueError(f'checkpoint tensors do not match the config: missing {missing}, unexpected {extra}')
    for k, v in params.items():
        if tuple(v.shape) != tuple(want[k].shape):
            raise ValueError(f'tensor {k}: shape {list(v.shape)}, the config needs {list(want[k].shape)}')
    model.load_state_dict({k: v.to(torch.float32) for k, v in params.items()})
    return model.to(dtype)


def to_bytes(model, dtype='F32'):
    """HeedLM → heed checkpoint bytes (parameters only; `dtype` 'F32' or 'F16')."""
    cast = {'F32': torch.float32, 'F16': torch.float16}[dtype]
    meta = dict(model.meta)
    meta['format'] = FORMAT
    if 'config' not in meta:
        c = model.config
        meta['config'] = json.dumps({k: c[k] for k in ('vocab', 'dModel', 'layers', 'heads', 'kvHeads', 'hidden', 'context', 'rope', 'tied', 'eps')}, separators=(',', ':'))
    if 'vocab' not in meta:
        if model.vocab is None:
            raise ValueError('save: the model has no vocabulary (pass vocab= to HeedLM)')
        meta['vocab'] = json.dumps(model.vocab, separators=(',', ':'), ensure_ascii=False)
    ordered = {k: meta[k] for k in ('format', 'config', 'vocab')}
    return write_safetensors({k: v.to(cast) for k, v in model.state_dict().items()}, ordered)


def save(model, path, dtype='F32'):
    """Write `model` as a heed checkpoint that `loadLM` loads."""
    with open(path, 'wb') as f:
        f.write(to_bytes(model, dtype))


def encode(model, text):
    index = {c: i for i, c in enumerate(model.vocab)}
    bad = [c for c in text if c not in index]
    if bad:
        raise ValueError(f'characters outside the vocabulary: {bad[:5]!r}')
    return torch.tensor([index[c] for c in text], dtype=torch.int64)


def decode(model, ids):
    return ''.join(model.vocab[int(i)] for i in ids)


# ---- heed's data order and recipe (lmBatches.ts, warmupCosine.ts, trainLM.ts) -------------------------------------

M32 = 0xFFFFFFFF


def _mix(h):
    h = ((h ^ (h >> 16)) * 0x85EBCA6B) & M32
    h = ((h ^ (h >> 13)) * 0xC2B2AE35) & M32
    return (h ^ (h >> 16)) & M32


def lm_batch_offsets(tokens, batch, context, seed, index):
    """lmBatchOffsets: window starts of batch `index`, bit for bit (the murmur3 finaliser on 32-bit words)."""
    span = tokens - context
    out = []
    for r in range(batch):
        h = _mix(_mix(_mix((seed & M32) ^ 0x9E3779B9) ^ index) ^ (((r + 1) * 0x27D4EB2F) & M32))
        out.append(math.floor((h / 2 ** 32) * span))
    return out


def warmup_cosine(lr, warmup, total, min_lr):
    def at(step):
        if warmup > 0 and step <= warmup:
            return lr * max(step, 1) / warmup
        if step >= total:
            return min_lr
        p = (step - warmup) / (total - warmup)
        return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * p))
    return at


def validation_loss(model, tokens, context, max_tokens, batch=8):
    """validationLoss: mean next-token loss over consecutive non-overlapping windows, nats."""
    n = min(len(tokens), max_tokens)
    windows = (n - 1) // context
    total = 0.0
    with torch.no_grad():
        for w0 in range(0, windows, batch):
            rows = min(batch, windows - w0)
            idx = torch.arange(rows)[:, None] * context + w0 * context + torch.arange(context)[None, :]
            x, y = tokens[idx], tokens[idx + 1]
            total += F.cross_entropy(model(x).reshape(-1, model.config['vocab']), y.reshape(-1).long()).item() * rows * context
    return total / (windows * context)


def train(spec):
    """The bench's PyTorch run: spec = {init, train, validation (int32 little-endian token files), recipe,
    evalEvery, evalTokens}. Returns per-step losses, evals, timings and the data order's check values."""
    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(0)
    r = spec['recipe']
    model = load(spec['init'])
    T = model.config['context']
    read = lambda p: torch.frombuffer(bytearray(open(p, 'rb').read()), dtype=torch.int32).long()
    tr, va = read(spec['train']), read(spec['validation'])
    opt = torch.optim.AdamW(model.parameters(), lr=r['lr'], betas=(r['beta1'], r['beta2']), eps=1e-8, weight_decay=r['weightDecay'])
    sched = warmup_cosine(r['lr'], r['warmup'], r['steps'], r['minLr'])
    ar = torch.arange(T)
    steps, evals, first = [], [], []
    t_train = 0.0
    for i in range(r['steps']):
        offs = lm_batch_offsets(len(tr), r['batch'], T, r['seed'], i)
        if i == 0 or i == r['steps'] - 1:
            first.append(offs)
        t0 = time.perf_counter()
        idx = torch.tensor(offs)[:, None] + ar[None, :]
        x, y = tr[idx], tr[idx + 1]
        for g in opt.param_groups:
            g['lr'] = sched(i + 1)
        loss = F.cross_entropy(model(x).reshape(-1, model.config['vocab']), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), r['clipNorm'])
        opt.step()
        dt = time.perf_counter() - t0
        t_train += dt
        steps.append({'step': i + 1, 'loss': loss.item(), 'gradNorm': norm.item(), 'seconds': dt})
        s = i + 1
        if spec['evalEvery'] > 0 and (s % spec['evalEvery'] == 0 or s == r['steps']):
            nats = validation_loss(model, va, T, spec['evalTokens'])
            evals.append({'step': s, 'nats': nats, 'bitsPerChar': nats / math.log(2)})
            # progress on stderr (stdout carries the result)
            print(f'  torch step {s:5d}: validation {nats:.4f} nats, {nats / math.log(2):.4f} bpc', file=sys.stderr, flush=True)
    return {
        'torch': torch.__version__,
        'threads': torch.get_num_threads(),
        'steps': steps,
        'evals': evals,
        'trainSeconds': t_train,
        'tokensPerSecond': r['steps'] * r['batch'] * T / t_train,
        'offsets': {'first': first[0], 'last': first[-1]},
    }


# ---- the fixture ------------------------------------------------------------------------------------------------

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE_DIR = os.path.join(ROOT, 'packages', 'attention', 'test', 'fixtures', 'lm-torch')
# Each model gets each prompt at position 0 and at a later absolute position (RoPE at absolute positions).
FIXTURE_PROMPTS = ['in the beginning god', 'the word was with god']
FIXTURE_POSITION = 3


def fixture():
    """Regenerate the fixture: heed makes the checkpoints, PyTorch computes the logits and saves the weights back."""
    subprocess.run(['node', '--conditions=@heed/source', '--import', 'tsx', os.path.join(ROOT, 'scripts', 'heed-lm-fixture.ts'), FIXTURE_DIR], cwd=ROOT, check=True)
    cases = []
    for name in sorted(f[:-len('.safetensors')] for f in os.listdir(FIXTURE_DIR) if f.endswith('.safetensors') and not f.endswith('.torch.safetensors')):
        src = os.path.join(FIXTURE_DIR, name + '.safetensors')
        m32, m64 = load(src), load(src, torch.float64)
        back = os.path.join(FIXTURE_DIR, name + '.torch.safetensors')
        save(m32, back)
        same = open(src, 'rb').read() == open(back, 'rb').read()
        for prompt in FIXTURE_PROMPTS:
            ids = encode(m32, prompt)
            for pos in (0, FIXTURE_POSITION):
                with torch.no_grad():
                    l32, l64 = m32(ids, pos), m64(ids, pos)
                cases.append({
                    'model': name,
                    'prompt': prompt,
                    'ids': ids.tolist(),
                    'position': pos,
                    # 9 significant digits round-trip a float32 exactly
                    'logits': [[float(f'{v:.9g}') for v in row] for row in l32.tolist()],
                    'logits64': [[float(v) for v in row] for row in l64.tolist()],
                })
                print(f'{name} {prompt!r} @{pos}: max |f32 - f64| {(l32.double() - l64).abs().max().item():.2e}')
        print(f'{name}: PyTorch saved {os.path.basename(back)}, {"byte-identical to" if same else "DIFFERENT BYTES from"} heed\'s file')
    out = {
        'about': 'made by `/usr/bin/python3 scripts/heed_lm.py fixture`; checked by packages/attention/test/lm-torch.ts',
        'torch': torch.__version__,
        'cases': cases,
    }
    with open(os.path.join(FIXTURE_DIR, 'logits.json'), 'w') as f:
        json.dump(out, f, separators=(',', ':'))
        f.write('\n')


def main(argv):
    if not argv or argv[0] in ('-h', '--help'):
        print(__doc__)
        return 0
    cmd, args = argv[0], argv[1:]
    if cmd == 'logits':
        pos = int(args[args.index('--position') + 1]) if '--position' in args else 0
        model = load(args[0])
        with torch.no_grad():
            p = model(encode(model, args[1]), pos)[-1].softmax(-1)
        top = p.topk(min(5, p.numel()))
        for v, i in zip(top.values.tolist(), top.indices.tolist()):
            print(f'{model.vocab[i]!r}\t{v:.4f}')
    elif cmd == 'convert':
        dtype = args[args.index('--dtype') + 1] if '--dtype' in args else 'F32'
        save(load(args[0]), args[1], dtype)
    elif cmd == 'fixture':
        fixture()
    elif cmd == 'train':
        print(json.dumps(train(json.load(open(args[0])))))
    else:
        print(f'unknown command {cmd!r}; see --help', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
