"""PyTorch peer of `npm run bench -- train` (bench/train.ts drives it; not a CI dependency).

The same character-level GPT as the heed side, from the same initial parameters and the same token batches (both
written by bench/train.ts into a directory passed as argv[1]): pre-norm blocks with RMSNorm, causal multi-head
attention without RoPE, an exact-erf GELU MLP, a final RMSNorm and a tied embedding; softmax cross-entropy and
torch.optim.AdamW. Prints one JSON object: per-step wall times and losses, peak RSS, and greedy decode with a KV
cache (an eager loop).
"""
import json
import math
import os
import resource
import struct
import sys
import time

import torch
import torch.nn.functional as F


def rss_bytes():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def peak_rss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def rms(x, g, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * g


def load(dirname):
    with open(os.path.join(dirname, 'config.json')) as f:
        cfg = json.load(f)
    raw = open(os.path.join(dirname, 'params.bin'), 'rb').read()
    params = {}
    off = 0
    for entry in cfg['params']:
        n = math.prod(entry['shape'])
        t = torch.frombuffer(bytearray(raw[off:off + 4 * n]), dtype=torch.float32).reshape(entry['shape']).clone()
        params[entry['name']] = t.requires_grad_(True)
        off += 4 * n
    tok = open(os.path.join(dirname, 'tokens.bin'), 'rb').read()
    tokens = torch.tensor(struct.unpack(f'<{len(tok) // 4}i', tok), dtype=torch.long)
    prompt = open(os.path.join(dirname, 'prompt.bin'), 'rb').read()
    prompt = torch.tensor(struct.unpack(f'<{len(prompt) // 4}i', prompt), dtype=torch.long)
    return cfg, params, tokens, prompt


def main():
    torch.set_num_threads(os.cpu_count())
    cfg, P, tokens, prompt = load(sys.argv[1])
    m = cfg['model']
    d, L, H, V, B, T = m['dModel'], m['layers'], m['heads'], m['vocab'], m['batch'], m['seq']
    Dh = d // H
    eps = 1e-6
    scale = 1 / math.sqrt(Dh)
    steps = cfg['steps']
    warmup = cfg['warmup']
    tokens = tokens.reshape(steps, B, T + 1)

    def block(l, h, cache=None, pos=0):
        Bq, Tq, _ = h.shape
        a = rms(h, P[f'l{l}.norm1'], eps)
        q = (a @ P[f'l{l}.Wq']).view(Bq, Tq, H, Dh).transpose(1, 2)
        k = (a @ P[f'l{l}.Wk']).view(Bq, Tq, H, Dh).transpose(1, 2)
        v = (a @ P[f'l{l}.Wv']).view(Bq, Tq, H, Dh).transpose(1, 2)
        if cache is not None:
            ck, cv = cache[l]
            ck[:, :, pos:pos + Tq] = k
            cv[:, :, pos:pos + Tq] = v
            k = ck[:, :, :pos + Tq]
            v = cv[:, :, :pos + Tq]
        s = (q @ k.transpose(-1, -2)) * scale
        Tk = k.shape[2]
        if Tq > 1:
            mask = torch.ones(Tq, Tk, dtype=torch.bool).triu(Tk - Tq + 1)
            s = s.masked_fill(mask, float('-inf'))
        o = torch.softmax(s, -1) @ v
        h = h + o.transpose(1, 2).reshape(Bq, Tq, d) @ P[f'l{l}.Wo']
        f = F.gelu(rms(h, P[f'l{l}.norm2'], eps) @ P[f'l{l}.W1'] + P[f'l{l}.b1'])
        return h + f @ P[f'l{l}.W2'] + P[f'l{l}.b2']

    def logits(x, cache=None, pos=0):
        h = P['emb'][x]
        for l in range(L):
            h = block(l, h, cache, pos)
        return rms(h, P['normF'], eps) @ P['emb'].t()

    opt = torch.optim.AdamW(list(P.values()), lr=cfg['lr'], betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    base_rss = rss_bytes()
    times, losses = [], []
    for s in range(steps):
        t0 = time.perf_counter()
        x = tokens[s, :, :T]
        y = tokens[s, :, 1:]
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(logits(x).reshape(-1, V), y.reshape(-1))
        loss.backward()
        opt.step()
        lv = loss.item()
        times.append((time.perf_counter() - t0) * 1000)
        losses.append(lv)
    peak_train = peak_rss_bytes()

    # greedy decode with a KV cache: prefill the prompt in one call, then one token per call
    dec = cfg['decode']
    out = []
    with torch.no_grad():
        total = dec['prompt'] + dec['tokens']
        cache = [(torch.zeros(1, H, total, Dh), torch.zeros(1, H, total, Dh)) for _ in range(L)]
        t0 = time.perf_counter()
        lg = logits(prompt.view(1, -1), cache, 0)
        nxt = int(lg[0, -1].argmax())
        t1 = time.perf_counter()
        pos = dec['prompt']
        for i in range(dec['tokens']):
            out.append(nxt)
            if i == dec['tokens'] - 1:
                break
            lg = logits(torch.tensor([[nxt]]), cache, pos)
            pos += 1
            nxt = int(lg[0, -1].argmax())
        t2 = time.perf_counter()
    print(json.dumps({
        'version': torch.__version__,
        'threads': torch.get_num_threads(),
        'blas': 'openblas' if 'openblas' in torch.__config__.show().lower() else 'unknown',
        'stepMs': times,
        'losses': losses,
        'warmup': warmup,
        'rssBefore': base_rss,
        'peakRss': peak_train,
        'decode': {'prefillMs': (t1 - t0) * 1000, 'decodeMs': (t2 - t1) * 1000, 'tokens': out},
    }))


if __name__ == '__main__':
    main()
