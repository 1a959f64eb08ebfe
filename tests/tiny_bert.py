"""A MiniLM-style encoder for tests: a small random-initialized BERT (``transformers`` config, eager attention)
exported offline with ``torch.onnx``; nothing is downloaded. Padded attention masks exercise the float-min mask."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SEQ = 16
VOCAB = 128
HEADS = 4
HIDDEN = 64


def export_tiny_bert(path: Path, *, layers: int = 2, seed: int = 0) -> Path:
    """Write the encoder (inputs ``input_ids``, ``attention_mask`` of shape [1, SEQ]; output the last hidden state)."""
    import torch
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=layers, num_attention_heads=HEADS,
                        intermediate_size=2 * HIDDEN, max_position_embeddings=64, attn_implementation="eager")
    torch.manual_seed(seed)
    bert = BertModel(config).eval()
    with torch.no_grad():  # a trained encoder's biases are not zero (fresh BERT's are, and simplify away)
        for name, param in bert.named_parameters():
            if name.endswith("bias"):
                param.normal_(0.0, 0.02)

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    feeds = (torch.zeros(1, SEQ, dtype=torch.int64), torch.ones(1, SEQ, dtype=torch.int64))
    torch.onnx.export(Encoder(), feeds, str(path), input_names=["input_ids", "attention_mask"],
                      output_names=["hidden"], opset_version=17, dynamo=False)
    return path


def bert_samples(n: int, *, seed: int) -> dict[str, np.ndarray]:
    """``n`` token sequences, each padded after a random length of 4..SEQ (mask 0 on the padding)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, VOCAB, (n, SEQ)).astype(np.int64)
    mask = np.ones((n, SEQ), np.int64)
    for i in range(n):
        mask[i, rng.integers(4, SEQ + 1):] = 0
    return {"input_ids": ids, "attention_mask": mask}
