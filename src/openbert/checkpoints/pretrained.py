"""Checkpoints in and out: original TF checkpoints, HF folders (safetensors / pytorch_model.bin), openbert folders.

Tensor names are canonical (see :mod:`openbert.checkpoints.names`). Loading
(:func:`load_pretrained`) accepts a TF prefix (``.../bert_model.ckpt``), a folder with a TF
``checkpoint`` file or a Google release folder, a HF folder (``config.json`` + ``model.safetensors``
or ``pytorch_model.bin``), an openbert folder, or a weights file. Encoder tensors the checkpoint
lacks are an error; a missing head (or pooler) is initialised fresh and logged by name. Loading is
strict the other way too: a checkpoint tensor the model does not use is an error naming it (a
config with fewer layers than the weights, a task head of another task), except the parts every
fine-tuning of a pre-trained checkpoint drops, as the original does: the pre-training heads
(``cls/predictions``, ``cls/seq_relationship``) and the pooler; a bare encoder
(:class:`~openbert.model.bert.BertModel`) drops any head. ``allow_unused=True``
(``--allow_unused_weights``) drops the others on purpose.

Writing (:func:`write_hf_folder`, :func:`write_tf_folder`) goes through
:func:`openbert.io.fileio.output_folder`: the folder appears complete or not at all.

The model classes' ``from_pretrained`` / ``save_pretrained`` are :func:`load_pretrained` and
:func:`save_pretrained`, installed on :class:`~openbert.model.bert.BertPreTrainedModel` when this
module is imported (the model package knows no file format).
"""
from __future__ import annotations

import contextlib
import contextvars
import inspect
import json
import logging
import os
import re
import shutil
from pathlib import Path

import torch

from ..config import BertConfig
from ..errors import OpenBertError
from ..io.fileio import output_folder
from ..model.bert import BertModel, BertPreTrainedModel
from .names import (ENCODER_PREFIX, IGNORED, TIED_DECODER, canonical_name, canonical_state,
                    canonical_to_tf, tf_name, tf_to_canonical)
from .tf_bundle import (TFCheckpointReader, read_checkpoint_state, write_checkpoint_state,
                        write_tf_checkpoint)

logger = logging.getLogger(__name__)

HF_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
TF_PREFIX = "bert_model.ckpt"
# checkpoint parts a model may leave unused without --allow_unused_weights: what fine-tuning a
# pre-trained checkpoint drops in the original (pre-training heads, and the pooler for SQuAD)
DROPPED_WHEN_FINE_TUNING = re.compile(r"^(cls\.predictions\.|cls\.seq_relationship\.|bert\.pooler\.)")


# ---------------------------------------------------------------------------------------------
# finding things
# ---------------------------------------------------------------------------------------------
def _tf_prefix(path: str) -> str | None:
    """The TF checkpoint prefix that ``path`` names, or None when it is not a TF checkpoint."""
    if path.endswith(".index") and os.path.isfile(path):
        return path[:-len(".index")]
    m = re.match(r"^(.*)\.data-\d{5}-of-\d{5}$", path)
    if m and os.path.isfile(path):
        return m.group(1)
    if os.path.isfile(path + ".index"):
        return path
    if os.path.isdir(path):
        state = read_checkpoint_state(path)
        if state is not None:
            if not os.path.isfile(state + ".index"):
                raise OpenBertError(f"{os.path.join(path, 'checkpoint')} names {state}, but "
                                    f"{state}.index does not exist")
            return state
        indexes = sorted(Path(path).glob("*.index"))
        if len(indexes) == 1:
            return str(indexes[0])[:-len(".index")]
        if len(indexes) > 1:
            raise OpenBertError(f"{path} holds several TF checkpoints ({', '.join(p.name for p in indexes)}) "
                                "and no `checkpoint` file: pass the prefix, e.g. "
                                f"{os.path.join(path, indexes[-1].name[:-len('.index')])}")
    return None


def _hf_weights(path: str) -> str | None:
    """The HF weights file that ``path`` is or holds, or None."""
    if os.path.isfile(path) and path.endswith((".safetensors", ".bin", ".pt", ".safetensors.index.json")):
        return path
    if os.path.isdir(path):
        for name in HF_WEIGHTS:
            if os.path.isfile(os.path.join(path, name)):
                return os.path.join(path, name)
    return None


def _folder(path) -> str:
    """The folder a checkpoint lives in (the folder itself, or the one holding the prefix/file)."""
    path = os.fspath(path)
    return path if os.path.isdir(path) else os.path.dirname(path) or "."


def model_folder_below(path, max_depth: int = 4) -> str | None:
    """The first folder under ``path`` (a folder; at most ``max_depth`` levels down) that holds a
    model (a config and vocab.txt), e.g. the model inside a download cache entry; else None."""
    root = os.fspath(path)
    if not os.path.isdir(root):
        return None
    for folder, subdirs, files in os.walk(root):
        subdirs.sort()
        if "vocab.txt" in files and ("config.json" in files or "bert_config.json" in files):
            return folder
        if os.path.relpath(folder, root).count(os.sep) + 1 >= max_depth:
            subdirs.clear()
    return None


def where_the_model_is(path) -> str:
    """`` (the model is in ...: pass that folder, or its name)`` when ``path`` holds a model
    deeper down, else ``""``: the hint for errors about a folder that lacks a model's files."""
    found = model_folder_below(path)
    if found is None or os.path.samefile(found, path):
        return ""
    from .assets import cache_dir

    name = ""
    try:
        rel = os.path.relpath(found, cache_dir())
        if not rel.startswith(".."):
            name = f", or the model's name, {rel.split(os.sep)[0]}"
    except ValueError:  # another drive
        pass
    return f" (the model is in {found}: pass that folder{name})"


def find_vocab(path) -> str | None:
    """``vocab.txt`` in the checkpoint's folder (or beside its prefix), or None when there is none."""
    p = os.path.join(_folder(path), "vocab.txt")
    return p if os.path.isfile(p) else None


def find_config(path) -> str | None:
    """The config beside a checkpoint, or None: ``bert_config.json`` is preferred for TF checkpoints,
    ``config.json`` for HF folders (both name the same model in an openbert folder)."""
    folder = _folder(path)
    is_tf = _hf_weights(os.fspath(path)) is None
    names = ("bert_config.json", "config.json") if is_tf else ("config.json", "bert_config.json")
    for name in names:
        p = os.path.join(folder, name)
        if os.path.isfile(p):
            return p
    return None


# ---------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------
def _read_hf_weights(weights: str) -> dict[str, torch.Tensor]:
    """A HF weights file (safetensors, sharded safetensors index, or torch pickle) -> {name: tensor}."""
    try:
        if weights.endswith(".safetensors.index.json"):
            with open(weights, encoding="utf-8") as f:
                shards = sorted(set(json.load(f)["weight_map"].values()))
            out = {}
            for s in shards:
                out.update(_read_hf_weights(os.path.join(os.path.dirname(weights), s)))
            return out
        if weights.endswith(".safetensors"):
            from safetensors.torch import load_file

            return load_file(weights)
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except FileNotFoundError as e:
        raise OpenBertError(f"weights file not found: {e.filename or weights}") from None
    except OpenBertError:
        raise
    except Exception as e:  # safetensors / pickle errors have many types
        raise OpenBertError(f"cannot read weights {weights}: {e.__class__.__name__}: {e}; "
                            "the file is corrupt or not a model checkpoint") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise OpenBertError(f"{weights} does not hold a state dict of tensors")
    return state


def read_checkpoint(path, include_optimizer: bool = False) -> tuple[dict[str, torch.Tensor], list[str], str]:
    """Any supported checkpoint -> ({canonical name: tensor}, [names not mapped], the file read).

    TF kernels come back transposed to torch's [out, in]; TF optimizer slots and global_step are
    skipped unless ``include_optimizer`` (they are then among the unmapped names).
    """
    path = os.fspath(path)
    weights = _hf_weights(path)  # a folder with HF weights is read as such, even beside a TF checkpoint
    prefix = _tf_prefix(path) if weights is None else None
    if prefix is not None:
        reader = TFCheckpointReader(prefix)
        state, unmapped = tf_to_canonical(reader.read_all(include_optimizer=include_optimizer))
        return state, unmapped, reader.index_path
    if weights is None:
        if not os.path.exists(path):
            raise OpenBertError(f"checkpoint not found: {path} (pass a TF prefix like "
                                ".../bert_model.ckpt, or a folder with model.safetensors or a TF checkpoint)")
        hint = where_the_model_is(path)
        if hint:
            raise OpenBertError(f"{path} is not a checkpoint but a folder that holds one{hint}")
        raise OpenBertError(f"{path} is not a checkpoint openbert can read: expected a TF checkpoint "
                            "(prefix, .index, or a folder with a `checkpoint` file) or a HF/openbert "
                            "folder with config.json and model.safetensors / pytorch_model.bin")
    state, unmapped = {}, []
    for name, t in _read_hf_weights(weights).items():
        name = canonical_name(name)
        if IGNORED.search(name):
            continue
        if tf_name(name) is None:
            unmapped.append(name)
        else:
            state[name] = t
    return state, unmapped, weights


def load_config(path, config: BertConfig | str | os.PathLike | None = None) -> BertConfig:
    """``config`` as given (object or file), else the config found beside the checkpoint ``path``."""
    if isinstance(config, BertConfig):
        return config
    if config is not None:
        return BertConfig.from_json_file(config)
    found = find_config(path)
    if found is None:
        hint = where_the_model_is(path) if path else ""
        raise OpenBertError(f"no bert_config.json or config.json beside {path}" + (hint or (
            ": pass the config (--bert_config_file) or put it in the checkpoint's folder")))
    return BertConfig.from_json_file(found)


def _head_kwargs(cls, state: dict, head_kwargs: dict) -> dict:
    """Infer ``num_labels`` from the checkpoint's classifier when the caller did not give it."""
    kwargs = dict(head_kwargs)
    if ("num_labels" in inspect.signature(cls.__init__).parameters and "num_labels" not in kwargs
            and "classifier.weight" in state):
        kwargs["num_labels"] = int(state["classifier.weight"].shape[0])
    return kwargs


_ALLOW_UNUSED = contextvars.ContextVar("openbert_allow_unused", default=False)


@contextlib.contextmanager
def unused_weights_allowed(allowed: bool = True):
    """Within the block, :func:`load_pretrained` without an explicit ``allow_unused`` drops
    checkpoint tensors the model does not use (how ``--allow_unused_weights`` reaches a task's
    ``build_model``)."""
    token = _ALLOW_UNUSED.set(allowed)
    try:
        yield
    finally:
        _ALLOW_UNUSED.reset(token)


def load_pretrained(cls, path, config: BertConfig | str | os.PathLike | None = None,
                    allow_unused: bool | None = None, fresh_head_expected: bool = False, **head_kwargs):
    """Build ``cls(config, **head_kwargs)`` and fill it from the checkpoint at ``path``.

    ``path``: TF prefix / folder, HF folder, openbert folder or weights file. ``config``: a
    BertConfig or a config file; by default the one beside the checkpoint. ``num_labels`` is taken
    from a fine-tuned checkpoint's classifier when not given. Raises OpenBertError on shape
    mismatch, missing encoder tensors, or checkpoint tensors the model does not use (beyond
    :data:`DROPPED_WHEN_FINE_TUNING`; ``allow_unused`` drops them with a warning).
    ``allow_unused`` None: as :func:`unused_weights_allowed` says (False). Tensors initialised
    fresh are logged: a fresh task head (tensors outside ``bert.``) at INFO when
    ``fresh_head_expected`` (training starts from a pre-trained encoder), anything else, and an
    untrained head used as it is, as a warning; ``model.fresh_head`` lists the head's fresh tensors.
    """
    if allow_unused is None:
        allow_unused = _ALLOW_UNUSED.get()
    path = os.fspath(path)
    config_obj = load_config(path, config)
    config_desc = (os.fspath(config) if isinstance(config, (str, os.PathLike)) else
                   "the given BertConfig" if config is not None else find_config(path))
    state, unmapped, source = read_checkpoint(path)
    with torch.device("meta"):  # no time spent initialising weights the checkpoint replaces
        model = cls(config_obj, **_head_kwargs(cls, state, head_kwargs))
    model.to_empty(device="cpu")
    is_base = isinstance(model, BertModel)
    own_state = model.state_dict()
    own = {(ENCODER_PREFIX + k if is_base else k): k for k in own_state}

    to_load, unexpected = {}, list(unmapped)
    for canon, t in state.items():
        if canon not in own:
            unexpected.append(canon)
            continue
        target = own_state[own[canon]]
        if tuple(t.shape) != tuple(target.shape):
            tf = tf_name(canon)[0]
            raise OpenBertError(
                f"shape mismatch for {canon} (TF {tf}): checkpoint {source} has {list(t.shape)}, "
                f"the model built from {config_desc} expects {list(target.shape)}; use the config "
                "that belongs to this checkpoint" + (" or the checkpoint's num_labels"
                                                     if canon.startswith("classifier.") else ""))
        to_load[own[canon]] = t.to(target.dtype)
    missing = [c for c, k in own.items() if k not in to_load]
    encoder_missing = [c for c in missing if c.startswith(("bert.embeddings.", "bert.encoder."))]
    if encoder_missing:
        shown = ", ".join(encoder_missing[:5]) + (" ..." if len(encoder_missing) > 5 else "")
        raise OpenBertError(f"{source} lacks {len(encoder_missing)} encoder tensor(s) the model needs "
                            f"({shown}); is it a BERT checkpoint matching {config_desc}?")
    # a bare encoder uses no head at all: it drops any head, never an encoder tensor
    unused = sorted(n for n in unexpected if not DROPPED_WHEN_FINE_TUNING.match(n)
                    and not (is_base and not n.startswith(ENCODER_PREFIX) and n in state))
    if unused and not allow_unused:
        shown = ", ".join(unused[:5]) + (" ..." if len(unused) > 5 else "")
        raise OpenBertError(
            f"{source} holds {len(unused)} tensor(s) that {cls.__name__} built from {config_desc} does "
            f"not use ({shown}): use the config that belongs to this checkpoint, or pass "
            f"--allow_unused_weights to drop them on purpose")
    model.load_state_dict(to_load, strict=False)
    model.init_weights(only={own[c] for c in missing})
    # untrained task-head tensors: everything outside the encoder (bert.*)
    model.fresh_head = [c for c in missing if not c.startswith("bert.")]
    head = model.fresh_head if fresh_head_expected else []
    if head:
        logger.info("%s: fresh task head, to be trained: %s", source, ", ".join(head))
    other = [c for c in missing if c not in head]
    if other:
        logger.warning("%s: not in the checkpoint, initialised fresh: %s", source, ", ".join(other))
    if unused:
        logger.warning("%s: dropped on purpose (--allow_unused_weights): %s", source, ", ".join(unused))
    dropped = sorted(set(unexpected) - set(unused))
    if dropped:
        logger.info("%s: not used by %s: %s", source, cls.__name__, ", ".join(dropped))
    return model


# ---------------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------------
def _hf_architecture(state: dict) -> str:
    """The HF class that these canonical tensors form."""
    if "cls.seq_relationship.weight" in state:
        return "BertForPreTraining"
    if "cls.predictions.bias" in state:
        return "BertForMaskedLM"
    if "qa_outputs.weight" in state:
        return "BertForQuestionAnswering"
    if "classifier.weight" in state:
        return "BertForSequenceClassification"
    return "BertModel"


def _copy_vocab(vocab_file, directory: str) -> None:
    """Copy ``vocab_file`` to ``directory/vocab.txt`` (a staging folder) unless it is that file."""
    if vocab_file is None:
        return
    vocab_file = os.fspath(vocab_file)
    if not os.path.isfile(vocab_file):
        raise OpenBertError(f"vocab file not found: {vocab_file}")
    target = os.path.join(directory, "vocab.txt")
    if not (os.path.exists(target) and os.path.samefile(vocab_file, target)):
        if os.path.lexists(target):
            os.remove(target)  # a hard link to the earlier file: never write through it
        shutil.copyfile(vocab_file, target)


def write_hf_folder(state: dict[str, torch.Tensor], config: BertConfig, directory, vocab_file=None,
                    architecture: str | None = None, fresh: bool = False, overwrite: bool = False,
                    command: str | None = None, strict: bool = False, flag: str = "--output_dir") -> str:
    """Write canonical tensors as a HF folder: config.json, bert_config.json, model.safetensors
    (HF names: no ``bert.`` prefix for a base model; the tied decoder written out for LM heads so
    that transformers loads it with no missing keys), and vocab.txt when given.

    The folder is swapped in complete (:func:`openbert.fileio.output_folder`): other entries of an
    existing folder are kept (unless ``fresh``: then earlier openbert outputs there go); a file of
    the same name that openbert did not write is replaced only with ``overwrite``. ``strict``: a
    command's output, which must pass :func:`openbert.fileio.check_output_dir` for ``command``
    (``flag`` names it in errors; ``overwrite`` then replaces the whole folder)."""
    from safetensors.torch import save_file

    directory = os.fspath(directory)
    architecture = architecture or _hf_architecture(state)
    if architecture == "BertModel":
        out = {k[len(ENCODER_PREFIX):] if k.startswith(ENCODER_PREFIX) else k: v for k, v in state.items()}
    else:
        out = dict(state)
        if "cls.predictions.bias" in out:
            out[TIED_DECODER[0]] = out["bert.embeddings.word_embeddings.weight"]
            out[TIED_DECODER[1]] = out["cls.predictions.bias"]
    out = {k: v.detach().cpu().contiguous().clone() for k, v in out.items()}
    num_labels = int(state["classifier.weight"].shape[0]) if "classifier.weight" in state else None
    with output_folder(directory, command, fresh=fresh, strict=strict, overwrite=overwrite,
                       flag=flag) as tmp:
        save_file(out, os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
        config.to_hf_json_file(os.path.join(tmp, "config.json"), architecture, num_labels=num_labels)
        config.to_json_file(os.path.join(tmp, "bert_config.json"))
        _copy_vocab(vocab_file, tmp)
    return directory


def save_pretrained(model, directory, vocab_file=None, overwrite: bool = False) -> str:
    """Write ``model`` as an openbert/HF folder (see :func:`write_hf_folder`); returns the folder."""
    return write_hf_folder(canonical_state(model), model.config, directory, vocab_file,
                           architecture=type(model).hf_architecture, overwrite=overwrite)


def write_tf_folder(state: dict[str, torch.Tensor], config: BertConfig, directory, vocab_file=None,
                    prefix_name: str = TF_PREFIX, fresh: bool = False, overwrite: bool = False,
                    command: str | None = None, strict: bool = False, flag: str = "--output_dir") -> str:
    """Write canonical tensors as a Google-style release folder: bert_config.json, vocab.txt,
    ``bert_model.ckpt.index`` / ``.data-00000-of-00001`` and the ``checkpoint`` file, swapped in
    complete as :func:`write_hf_folder`. Returns the prefix."""
    directory = os.fspath(directory)
    with output_folder(directory, command, fresh=fresh, strict=strict, overwrite=overwrite,
                       flag=flag) as tmp:
        write_tf_checkpoint(os.path.join(tmp, prefix_name), canonical_to_tf(state))
        write_checkpoint_state(tmp, prefix_name)
        config.to_json_file(os.path.join(tmp, "bert_config.json"))
        _copy_vocab(vocab_file, tmp)
    return os.path.join(directory, prefix_name)


def save_tf_checkpoint(model, directory, vocab_file=None) -> str:
    """Write ``model`` as an original TF checkpoint folder; returns the prefix."""
    return write_tf_folder(canonical_state(model), model.config, directory, vocab_file)


BertPreTrainedModel.install_checkpoint_io(load_pretrained, save_pretrained)
