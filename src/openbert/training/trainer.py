"""The one training loop every task uses (pre-training, classification, SQuAD, tagging).

``Trainer(model, args, train_dataset, collate_fn).train()`` runs ``args.num_train_steps`` optimizer
steps of ``args.train_batch_size`` examples each (the global batch, as the original flag), with:

- BERT's optimizer and schedule (:mod:`openbert.training.optimization`) and clipping by global norm;
- gradient accumulation: the global batch is cut into ``world_size * gradient_accumulation_steps``
  equal micro-batches; every loss term is normalised by its weight over the whole global batch
  (examples, labelled tokens, masked-LM weights), so the update is that of one batch of
  ``train_batch_size`` (see :meth:`Trainer._step`);
- gradient checkpointing per encoder layer; autocast precision (bf16 on CPU/CUDA, fp16 with loss
  scaling on CUDA; the weights and optimizer state stay fp32);
- data parallelism under ``torchrun`` (DistributedDataParallel: NCCL on GPU, gloo on CPU); rank 0
  alone logs and writes;
- checkpoints every ``save_checkpoints_steps`` and at the end, keep-last-K, exact resume; as the
  original's Estimator, a run whose checkpoints are already in ``output_dir`` (same model, data and
  batch settings: the fingerprint stored in each checkpoint) continues from the newest good one by
  itself; checkpoints of another run are an error unless ``resume`` (continue anyway) or
  ``overwrite_output_dir`` (delete them and start over);
- tqdm progress, ``metrics.jsonl`` and ``metrics.png``; a non-finite loss stops the run with a
  checkpoint to inspect;
- ``callbacks`` the task passes in (:class:`TrainingCallback`), e.g. :class:`ChanceLossCheck`, which
  warns once when the loss is still at the task's chance level after 30% of the steps.

``predict(model, dataset, collate_fn, batch_size)`` is the matching inference loop.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..errors import OpenBertError
from ..io.fileio import clean_stale_in, record_outputs
from . import state as train_state
from .batching import GlobalBatchSampler, IndexBatches, inference_batches
from .distributed import (WorldInfo, all_gather_object, all_reduce_mean, all_reduce_sum, barrier,
                          init_distributed, is_main_process, world_info)
from .optimization import OPTIMIZERS, clip_by_global_norm, create_optimizer
from .plotting import plot_metrics

logger = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")

__all__ = ["TrainingArguments", "Trainer", "TrainResult", "TrainingCallback", "ChanceLossCheck", "predict",
           "resolve_device", "autocast", "inference_precision", "native_bf16", "prepare_for_inference",
           "dense_dtype", "set_seed", "is_main_process", "world_info", "WorldInfo", "PRECISIONS"]


# ---------------------------------------------------------------------------------------------
# arguments
# ---------------------------------------------------------------------------------------------
@dataclass
class TrainingArguments:
    """Settings of one training run. Field names are the original scripts' flags (commands.flags)."""

    output_dir: str
    train_batch_size: int = 32  # global batch of one optimizer step (all ranks, all micro-batches)
    learning_rate: float = 5e-5
    num_train_steps: int = 1
    num_warmup_steps: int = 0
    gradient_accumulation_steps: int = 1
    precision: str = "fp32"
    gradient_checkpointing: bool = False
    device: str = "auto"
    seed: int = 42
    optimizer: str = "adamw_bert"
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0  # <= 0: no clipping
    save_checkpoints_steps: int | None = 1000  # None or <= 0: only at the end
    keep_checkpoint_max: int = 3  # <= 0: keep all
    resume: bool = False  # continue from the checkpoints in output_dir even if they are another run's
    overwrite_output_dir: bool = False  # delete the checkpoints and metrics in output_dir first
    progress: bool = True
    log_every_n_steps: int = 10
    dataloader_num_workers: int = 0
    plot: bool = True

    def __post_init__(self):
        def bad(flag, value, why):
            raise OpenBertError(f"--{flag}={value} {why}")

        if self.precision not in PRECISIONS:
            bad("precision", self.precision, f"is unknown; choose one of {', '.join(PRECISIONS)}")
        if self.optimizer not in OPTIMIZERS:
            bad("optimizer", self.optimizer, f"is unknown; choose one of {', '.join(OPTIMIZERS)}")
        if not (self.device in DEVICES or str(self.device).startswith("cuda:")):
            bad("device", self.device, f"is unknown; choose one of {', '.join(DEVICES)}")
        if self.gradient_accumulation_steps < 1:
            bad("gradient_accumulation_steps", self.gradient_accumulation_steps, "must be >= 1")
        if self.train_batch_size < 1:
            bad("train_batch_size", self.train_batch_size, "must be >= 1")
        if self.train_batch_size % self.gradient_accumulation_steps:
            bad("train_batch_size", self.train_batch_size,
                f"is the global batch of one optimizer step and must be divisible by "
                f"--gradient_accumulation_steps={self.gradient_accumulation_steps}")
        if self.num_train_steps < 1:
            bad("num_train_steps", self.num_train_steps, "must be >= 1")
        if not 0 <= self.num_warmup_steps:
            bad("num_warmup_steps", self.num_warmup_steps, "must be >= 0")
        if not self.learning_rate > 0:
            bad("learning_rate", self.learning_rate, "must be > 0 (BERT fine-tuning uses 2e-5 to 5e-5)")
        if self.resume and self.overwrite_output_dir:
            raise OpenBertError("--resume and --overwrite_output_dir contradict each other: pass one")
        if self.log_every_n_steps < 1:
            bad("log_every_n_steps", self.log_every_n_steps, "must be >= 1")


@dataclass
class TrainResult:
    global_step: int
    loss: float  # mean training loss over the last logging window
    train_seconds: float = 0.0
    seq_per_s: float = 0.0
    checkpoint: str | None = None  # the last checkpoint written
    metrics_path: str | None = None
    history: list = field(default_factory=list, repr=False)  # the metrics rows of this run


# ---------------------------------------------------------------------------------------------
# callbacks
# ---------------------------------------------------------------------------------------------
class TrainingCallback:
    """A hook the Trainer calls on the main process; override what you need."""

    def on_step(self, step: int, loss: float, args: TrainingArguments) -> None:
        """After optimizer step ``step`` (1-based) with its global mean training ``loss``."""


class ChanceLossCheck(TrainingCallback):
    """Warn once when training has not left chance level.

    ``chance_loss``: the loss of a model that has learnt nothing (``ln(num_labels)`` for a uniform
    guess over ``num_labels`` classes), ``what`` names it in the warning, ``hint`` gives the likely
    causes and the flags to try. At step ``ceil(after * num_train_steps)`` the mean loss of the
    steps since ``(after - window) * num_train_steps`` is compared with ``chance_loss``; within
    ``tolerance`` (relative) it logs one warning and sets ``warned``. Runs of fewer than
    ``min_steps`` steps (smoke tests: too short to leave chance anyway) and a run resumed past
    that point are not checked.
    """

    def __init__(self, chance_loss: float, what: str, hint: str, tolerance: float = 0.02,
                 after: float = 0.3, window: float = 0.1, min_steps: int = 20):
        if not 0 < window <= after <= 1:
            raise ValueError(f"need 0 < window <= after <= 1, got window={window}, after={after}")
        self.chance_loss, self.what, self.hint = float(chance_loss), what, hint
        self.tolerance, self.after, self.window, self.min_steps = tolerance, after, window, min_steps
        self.losses: list[tuple[int, float]] = []
        self.warned = False

    def on_step(self, step: int, loss: float, args: TrainingArguments) -> None:
        total = args.num_train_steps
        at = max(1, math.ceil(self.after * total))
        if step > at or self.warned or total < self.min_steps:
            return
        if step > (self.after - self.window) * total:
            self.losses.append((step, loss))
        if step < at or not self.losses:
            return
        mean = sum(x for _, x in self.losses) / len(self.losses)
        if abs(mean - self.chance_loss) <= self.tolerance * self.chance_loss:
            self.warned = True
            first = self.losses[0][0]
            steps = f"step {step}" if first == step else f"steps {first}-{step}"
            logger.warning("the training loss is still at chance level: %.4f over %s of %d is within "
                           "%g%% of %s = %.4f, so the model has learnt nothing yet. %s", mean, steps,
                           total, 100 * self.tolerance, self.what, self.chance_loss, self.hint)


# ---------------------------------------------------------------------------------------------
# device, precision, seed
# ---------------------------------------------------------------------------------------------
def resolve_device(name: str | torch.device = "auto", local_rank: int | None = None) -> torch.device:
    """``"auto"`` -> cuda when available, else cpu; under torchrun cuda means ``cuda:LOCAL_RANK``."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise OpenBertError(f"--device={name} but no CUDA device is available; use --device=cpu "
                                f"or --device=auto")
        if name == "cuda":
            rank = world_info().local_rank if local_rank is None else local_rank
            return torch.device("cuda", rank)
        return torch.device(name)
    raise OpenBertError(f"--device={name} is unknown; choose one of {', '.join(DEVICES)}")


def autocast(precision: str, device: torch.device | str):
    """The autocast context for ``precision`` on ``device`` (a no-op for fp32)."""
    device = torch.device(device)
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision == "fp16":
        if device.type != "cuda":
            raise OpenBertError("--precision=fp16 needs a CUDA device; on the CPU use --precision=bf16")
        return torch.autocast("cuda", dtype=torch.float16)
    raise OpenBertError(f"--precision={precision} is unknown; choose one of {', '.join(PRECISIONS)}")


def native_bf16(device: torch.device | str) -> bool:
    """Whether ``device`` has bf16 products in hardware: CUDA, or a CPU where oneDNN runs bf16
    natively (AVX-512 or AMX). Elsewhere bf16 is emulated: many times slower than fp32."""
    device = torch.device(device)
    return device.type != "cpu" or torch.ops.mkldnn._is_mkldnn_bf16_supported()


def inference_precision(precision: str, device: torch.device | str) -> str:
    """The precision inference runs at: ``precision``, but fp32 for bf16 on a CPU without bf16
    hardware (what OpenVINO does with a bf16 hint there; emulated bf16 is slower than fp32)."""
    if precision not in PRECISIONS:
        raise OpenBertError(f"--precision={precision} is unknown; choose one of {', '.join(PRECISIONS)}")
    if precision == "bf16" and not native_bf16(device):
        if not _warned.get("bf16"):
            logger.warning("this CPU has no bf16 products (no AVX-512 / AMX): running inference in fp32")
            _warned["bf16"] = True
        return "fp32"
    return precision


_warned: dict = {}


def dense_dtype(model: torch.nn.Module) -> torch.dtype:
    """The dtype of the model's dense layers (float32 unless cast with ``to_inference_dtype``)."""
    return next((m.weight.dtype for m in model.modules() if isinstance(m, torch.nn.Linear)), torch.float32)


def prepare_for_inference(model: torch.nn.Module, precision: str = "fp32", device="auto"):
    """Move a freshly loaded ``model`` to ``device`` in eval mode and, for bf16 where the device
    has it (:func:`inference_precision`), cast its dense layers once (``to_inference_dtype``)."""
    device = resolve_device(device)
    model.to(device).eval()
    if inference_precision(precision, device) == "bf16" and hasattr(model, "to_inference_dtype"):
        model.to_inference_dtype(torch.bfloat16)
    return model


def set_seed(seed: int) -> None:
    """Seed Python's, numpy's and torch's generators (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _to_device(batch: dict, device: torch.device) -> dict:
    nb = device.type == "cuda"
    return {k: (v.to(device, non_blocking=nb) if isinstance(v, torch.Tensor) else v)
            for k, v in batch.items()}


def _progress(total: int, initial: int, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, desc=desc, dynamic_ncols=True)


# ---------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------
class Trainer:
    """Train ``model`` on ``train_dataset`` (map-style) with ``collate_fn(examples) -> dict``.

    ``model(**batch)`` must return an object with a scalar ``.loss`` (and, for exact accumulation
    of losses that are not per-example means, ``.loss_terms``; see :meth:`_step`). ``lengths`` (one int per
    example) turns on length-bucketed batches. ``callbacks``: :class:`TrainingCallback` objects
    called on the main process. After ``train()`` the model holds the final weights.
    """

    def __init__(self, model: torch.nn.Module, args: TrainingArguments, train_dataset,
                 collate_fn: Callable[[list], dict], lengths: Sequence[int] | None = None,
                 callbacks: Sequence[TrainingCallback] = ()):
        self.model = model
        self.callbacks = list(callbacks)
        self.args = args
        self.train_dataset = train_dataset
        self.collate_fn = collate_fn
        self.lengths = lengths
        self.output_dir = Path(args.output_dir)
        self.metrics_path = self.output_dir / "metrics.jsonl"
        self.global_step = 0
        self.optimizer = None
        self.scheduler = None
        self.scaler = None

    # -- setup --------------------------------------------------------------------------------
    def _setup(self) -> None:
        args = self.args
        wanted = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
        self.world = init_distributed("cuda" if str(wanted).startswith("cuda") else "cpu")
        self.device = resolve_device(args.device, self.world.local_rank)
        autocast(args.precision, self.device)  # validates precision against the device
        self.sampler = GlobalBatchSampler(len(self.train_dataset), args.train_batch_size, args.seed,
                                          self.world.rank, self.world.world_size,
                                          args.gradient_accumulation_steps, self.lengths)
        if args.gradient_checkpointing:
            if not hasattr(self.model, "set_gradient_checkpointing"):
                raise OpenBertError(f"{type(self.model).__name__} does not support "
                                    f"--gradient_checkpointing")
            self.model.set_gradient_checkpointing(True)
        self.model.to(self.device)
        self.optimizer, self.scheduler = create_optimizer(
            self.model, args.learning_rate, args.num_train_steps, args.num_warmup_steps,
            optimizer=args.optimizer, weight_decay=args.weight_decay)
        self.scaler = torch.amp.GradScaler("cuda", enabled=args.precision == "fp16")
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        if self.world.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            record_outputs(self.output_dir, ["checkpoints/", "metrics.jsonl", "metrics.png"], "train")
            clean_stale_in(train_state.checkpoint_dir(self.output_dir))
        self.fingerprint = self._fingerprint()

    def _fingerprint(self) -> dict:
        """What makes two runs the same run: the model, the data and the batch settings."""
        data = getattr(self.train_dataset, "fingerprint", None)
        a = self.args
        return {"model": train_state.model_fingerprint(self.model),
                "data": data() if callable(data) else train_state.data_fingerprint(self.train_dataset),
                "train_batch_size": a.train_batch_size,
                "gradient_accumulation_steps": a.gradient_accumulation_steps, "seed": a.seed,
                "optimizer": a.optimizer}

    def _wrap(self) -> torch.nn.Module:
        if self.world.world_size == 1:
            return self.model
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DDP(self.model, device_ids=ids, find_unused_parameters=True)

    # -- checkpoints -------------------------------------------------------------------------
    def _state(self) -> dict:
        return {"global_step": self.global_step,
                "samples_seen": self.global_step * self.args.train_batch_size,
                "train_batch_size": self.args.train_batch_size,
                "seed": self.args.seed,
                "world_size": self.world.world_size,
                "fingerprint": self.fingerprint,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict()}

    def save_checkpoint(self, path=None) -> Path:
        """Write the full training state (collective under torchrun; rank 0 writes)."""
        path = Path(path) if path else train_state.checkpoint_path(self.output_dir, self.global_step)
        rngs = all_gather_object(train_state.rng_state())
        if self.world.is_main:
            train_state.save_checkpoint(path, {**self._state(), "rng": rngs})
            train_state.prune_checkpoints(self.output_dir, self.args.keep_checkpoint_max)
        barrier()
        return path

    def _start(self) -> None:
        """Resume from the newest good checkpoint of this run in output_dir, or start fresh."""
        args, out = self.args, self.output_dir
        found = None if args.overwrite_output_dir else train_state.load_latest(out)
        if found is None:
            if args.resume:
                raise OpenBertError(f"--resume: no checkpoint in {train_state.checkpoint_dir(out)}; "
                                    f"run without --resume to start fresh")
            if self.world.is_main:
                self._clear_earlier_run()
            return
        path, state = found
        diff = train_state.describe_mismatch(state.get("fingerprint"), self.fingerprint)
        if diff and not args.resume:
            raise OpenBertError(
                f"--output_dir {out} holds checkpoints of another run ({diff}); pass --resume to "
                f"continue that run anyway, or --overwrite_output_dir to delete it and start over")
        if diff:
            logger.warning("--resume: continuing from %s although %s", path, diff)
        self._resume(path, state)

    def _resume(self, path: Path, state: dict) -> None:
        if state["train_batch_size"] != self.args.train_batch_size:
            raise OpenBertError(f"{path} was written with --train_batch_size={state['train_batch_size']}; "
                                f"resume with the same value (got {self.args.train_batch_size})")
        train_state.check_model_state(self.model, state["model"], path)
        self.model.load_state_dict(state["model"])
        try:
            self.optimizer.load_state_dict(state["optimizer"])
        except (ValueError, KeyError) as e:
            raise OpenBertError(f"{path}: optimizer state does not fit (--optimizer changed?): {e}") from None
        self.scheduler.load_state_dict(state["scheduler"])
        # num_train_steps / warmup may change on resume (train longer): recompute the current lr
        self.scheduler.num_train_steps = self.args.num_train_steps
        self.scheduler.num_warmup_steps = self.args.num_warmup_steps
        self.scheduler.base_lrs = [self.args.learning_rate] * len(self.optimizer.param_groups)
        lrs = self.scheduler.get_lr()
        for g, lr in zip(self.optimizer.param_groups, lrs):
            g["lr"] = lr
        self.scheduler._last_lr = lrs
        if state["scaler"] and self.scaler.is_enabled():  # empty when written without fp16
            self.scaler.load_state_dict(state["scaler"])
        self.global_step = int(state["global_step"])
        rngs = state["rng"]
        self._resume_rng = rngs[self.world.rank] if len(rngs) == self.world.world_size else None
        if self._resume_rng is None:
            logger.warning("%s was written by %d processes, now %d: random states are reseeded",
                           path, len(rngs), self.world.world_size)
        if self.world.is_main:
            logger.info("resuming this run from %s at step %d (--overwrite_output_dir starts over)",
                        path, self.global_step)
            self._truncate_metrics()

    def _clear_earlier_run(self) -> None:
        """A fresh start: drop the metrics of an earlier attempt and, with --overwrite_output_dir,
        the earlier run's checkpoints, so keep-last-K and resuming only ever see this run's."""
        old = list(train_state.checkpoint_dir(self.output_dir).glob("*.pt"))
        if old and self.args.overwrite_output_dir:
            logger.warning("--overwrite_output_dir: removing %d checkpoint(s) of an earlier run in %s",
                           len(old), train_state.checkpoint_dir(self.output_dir))
            for p in old:
                p.unlink(missing_ok=True)
        self.metrics_path.unlink(missing_ok=True)

    def _truncate_metrics(self) -> None:
        """Drop metric lines written after the checkpoint we resume from."""
        from ..io.fileio import atomic_write_text
        from .plotting import read_metrics

        if self.metrics_path.is_file():
            rows = [r for r in read_metrics(self.metrics_path) if r.get("step", 0) <= self.global_step]
            atomic_write_text(self.metrics_path, "".join(json.dumps(r) + "\n" for r in rows))

    # -- the loop ----------------------------------------------------------------------------
    def train(self) -> TrainResult:
        args = self.args
        self._setup()
        self._resume_rng = None
        self._start()
        barrier()
        if self.global_step >= args.num_train_steps:
            logger.info("already at step %d of %d: nothing to train", self.global_step, args.num_train_steps)
        start = self.global_step
        wrapped = self._wrap()
        loader = DataLoader(self.train_dataset,
                            batch_sampler=IndexBatches(self.sampler, start, args.num_train_steps),
                            collate_fn=self.collate_fn, num_workers=args.dataloader_num_workers,
                            pin_memory=self.device.type == "cuda", generator=torch.Generator())
        batches = iter(loader)
        # random states last, so nothing above shifts them: a resumed run continues the same streams
        if self._resume_rng is not None:
            train_state.set_rng_state(self._resume_rng)
        else:
            set_seed(args.seed + self.world.rank + start)
        self.model.train()
        history, window, last_ckpt = [], [], None
        t_window, t_start = time.perf_counter(), time.perf_counter()
        bar = _progress(args.num_train_steps, start, args.progress and self.world.is_main, "train")
        try:
            while self.global_step < args.num_train_steps:
                loss, grad_norm, lr = self._step(wrapped, batches)
                if not math.isfinite(loss):
                    self._stop_nonfinite(loss)
                self.global_step += 1
                window.append(loss)
                if self.world.is_main:
                    for callback in self.callbacks:
                        callback.on_step(self.global_step, loss, args)
                bar.update(1)
                done = self.global_step == args.num_train_steps
                if self.global_step % args.log_every_n_steps == 0 or done:
                    now = time.perf_counter()
                    row = {"step": self.global_step, "loss": sum(window) / len(window), "lr": lr,
                           "grad_norm": grad_norm,
                           "seq_per_s": len(window) * args.train_batch_size / max(now - t_window, 1e-9),
                           "epoch": self.global_step * args.train_batch_size / len(self.train_dataset)}
                    history.append(row)
                    self._log(row, bar)
                    window, t_window = [], now
                step_ckpt = args.save_checkpoints_steps and self.global_step % args.save_checkpoints_steps == 0
                if step_ckpt or done:
                    last_ckpt = self.save_checkpoint()
        finally:
            bar.close()
        seconds = time.perf_counter() - t_start
        if self.world.is_main and args.plot and history:
            plot_metrics(self.metrics_path, self.output_dir / "metrics.png")
        steps = self.global_step - start
        return TrainResult(global_step=self.global_step, loss=history[-1]["loss"] if history else float("nan"),
                           train_seconds=seconds,
                           seq_per_s=steps * args.train_batch_size / seconds if seconds > 0 else 0.0,
                           checkpoint=str(last_ckpt) if last_ckpt else None,
                           metrics_path=str(self.metrics_path), history=history)

    def _step(self, wrapped: torch.nn.Module, batches: Iterator) -> tuple[float, float, float]:
        """One optimizer step over this rank's micro-batches -> (global mean loss, grad norm, lr).

        The update is that of one batch of ``train_batch_size`` examples, however it is cut into
        micro-batches and ranks. Each term of the model's loss (``output.loss_terms``) is a mean,
        ``value_i = sum_i / (w_i + eps)`` over its micro-batch's weight ``w_i`` (examples, labelled
        tokens, masked-LM weights); the whole batch's term is ``sum_i sum_i / (W + eps)`` with ``W``
        the weights' total over all micro-batches and ranks. So micro-batch ``i`` back-propagates
        ``value_i * (w_i + eps) / (W + eps) * world_size`` (DDP averages the ranks' gradients).
        ``W`` must be known before the first backward: the model's ``loss_weights(**batch)`` gives
        the weights from the labels alone. A model without loss terms is taken to return a
        per-example mean over equal micro-batches: ``loss / gradient_accumulation_steps``.
        """
        args = self.args
        accum = args.gradient_accumulation_steps
        fp16 = args.precision == "fp16"
        micro = [_to_device(next(batches), self.device) for _ in range(accum)]
        totals = self._loss_weight_totals(micro)
        world = self.world.world_size
        loss_sum = torch.zeros((), device=self.device)
        for a, batch in enumerate(micro):
            sync = (wrapped.no_sync() if wrapped is not self.model and a < accum - 1
                    else contextlib.nullcontext())
            with sync:
                with autocast(args.precision, self.device):
                    out = wrapped(**batch)
                if getattr(out, "loss", None) is None:
                    raise OpenBertError(f"{type(self.model).__name__} returned no loss: the collate "
                                        f"function must include the labels")
                terms = getattr(out, "loss_terms", None)
                if terms:
                    objective = sum(t.value.float() * ((t.weight + t.eps) / (totals[name] + t.eps) * world)
                                    for name, t in terms.items())
                else:
                    objective = out.loss.float() / accum
                loss_sum += objective.detach()
                (self.scaler.scale(objective) if fp16 else objective).backward()
        mean_loss = all_reduce_mean(loss_sum).item()
        if not math.isfinite(mean_loss):
            return mean_loss, float("nan"), float("nan")
        if fp16:
            self.scaler.unscale_(self.optimizer)
        norm = (clip_by_global_norm(self.params, args.max_grad_norm) if args.max_grad_norm > 0
                else torch.zeros(()))
        lr = self.optimizer.param_groups[0]["lr"]
        if fp16:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return mean_loss, float(norm), lr

    def _loss_weight_totals(self, micro: list[dict]) -> dict[str, torch.Tensor]:
        """{loss term: its weight summed over this step's micro-batches on every rank}."""
        weights_of = getattr(self.model, "loss_weights", None)
        if weights_of is None:
            return {}
        per_batch = [weights_of(**b) for b in micro]
        names = sorted(set().union(*per_batch))
        if not names:
            return {}
        local = torch.stack([sum(w[n].float() for w in per_batch) for n in names])
        return dict(zip(names, all_reduce_sum(local)))

    def _stop_nonfinite(self, loss: float) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        path = train_state.checkpoint_dir(self.output_dir) / f"nonfinite-step-{self.global_step + 1:08d}.pt"
        self.save_checkpoint(path)
        raise OpenBertError(
            f"the training loss became {loss} at step {self.global_step + 1}; the state before that step "
            f"is saved in {path}. Try a lower --learning_rate, more --num_warmup_steps, or "
            f"--precision=fp32/bf16 instead of fp16")

    def _log(self, row: dict, bar) -> None:
        if not self.world.is_main:
            return
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        bar.set_postfix(loss=f"{row['loss']:.4f}", lr=f"{row['lr']:.2e}", seq_s=f"{row['seq_per_s']:.1f}")
        if not self.args.progress:
            logger.info("step %d: loss %.4f, lr %.3e, %.1f seq/s", row["step"], row["loss"], row["lr"],
                        row["seq_per_s"])


# ---------------------------------------------------------------------------------------------
# inference
# ---------------------------------------------------------------------------------------------
def predict(model: torch.nn.Module, dataset, collate_fn: Callable[[list], dict], batch_size: int,
            device: str | torch.device = "auto", precision: str = "fp32",
            lengths: Sequence[int] | None = None, progress: bool = True,
            compile: bool = False) -> Iterator[tuple[list, object]]:
    """Yield ``(indices, model output)`` per batch under ``torch.inference_mode()``.

    Batches are consecutive examples, or sorted by length (stable) when ``lengths`` is given, so
    callers put results back by ``indices``. The model is put in eval mode and restored after.
    ``precision``: see :func:`inference_precision`; a model whose dense layers were cast
    (``to_inference_dtype``) runs in that dtype, a float32 one under autocast. ``compile``:
    ``model.compile`` in place (later calls reuse the compiled code) with dynamic shapes and
    eager's roundings (``emulate_precision_casts``: bf16 results equal eager's).
    """
    device = resolve_device(device)
    model.to(device)
    was_training = model.training
    model.eval()
    precision = inference_precision(precision, device)
    if dense_dtype(model) != torch.float32:
        precision = "fp32"  # cast for inference already: no autocast on top
    if compile:
        model.compile(dynamic=True, options={"emulate_precision_casts": True})
    batches = inference_batches(len(dataset), batch_size, lengths)
    bar = _progress(len(dataset), 0, progress and is_main_process(), "predict")
    try:
        with torch.inference_mode():
            for idx in batches:
                batch = _to_device(collate_fn([dataset[i] for i in idx]), device)
                with autocast(precision, device):
                    out = model(**batch)
                bar.update(len(idx))
                yield idx, out
    finally:
        bar.close()
        model.train(was_training)
