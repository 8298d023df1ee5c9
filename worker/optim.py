"""ConvNetJS's SGDTrainer update rules as a handful of in-place operations on flat buffers.

Every parameter and its gradient are views into one flat buffer each, so a rule costs the same few
vectorised operations whatever the number of layers: small nets on a CPU spend more on dispatching
per-tensor kernels than on arithmetic. Per-parameter decay multipliers become flat vectors beside them.
"""
from __future__ import annotations

import math
from numbers import Real

import torch

from service.spec.schemas import METHODS, default_eps
from service.spec.schemas import TRAINER_LIVE_FIELDS as HYPER_NAMES

_CONST_NAMES = ("ro", "eps", "beta1", "beta2")
# A typo such as "l2_decay_multiplier" would otherwise be silently ignored.
_GROUP_KEYS = {"params", "l1_decay_mul", "l2_decay_mul"}
# ConvNetJS's per-parameter accumulators: gsum for every method but plain sgd (kept for sgd too,
# since momentum may become positive live), xsum for adam and adadelta.
_XSUM_METHODS = ("adam", "adadelta")


def _check_hyper(name: str, value):
    """Validate one live hyper-parameter and return it normalised."""
    if name not in HYPER_NAMES:
        raise ValueError(f"unknown hyper-parameter {name!r}; expected one of {HYPER_NAMES}")
    if name == "batch_size":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"batch_size must be a positive int, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def _groups(param_groups) -> list[dict]:
    """Param groups as dicts with both decay multipliers; a plain list of tensors is one group."""
    param_groups = list(param_groups)
    if param_groups and isinstance(param_groups[0], torch.Tensor):
        param_groups = [{"params": param_groups}]
    out = []
    for group in param_groups:
        unknown = set(group) - _GROUP_KEYS
        if unknown:
            raise ValueError(f"unsupported param group keys {sorted(unknown)}; allowed: {sorted(_GROUP_KEYS)}")
        out.append({"params": list(group["params"]), "l1_decay_mul": float(group.get("l1_decay_mul", 1.0)),
                    "l2_decay_mul": float(group.get("l2_decay_mul", 1.0))})
    return out


def _view(flat: torch.Tensor, like: torch.Tensor, offset: int) -> torch.Tensor:
    """The slice of `flat` at `offset` seen with the shape and strides (memory format) of `like`."""
    return torch.as_strided(flat, like.shape, like.stride(), offset)


class ConvNetJSOptimizer:
    """ConvNetJS's SGDTrainer update; the parameters' .grad accumulate the gradient sum of the examples since the last update.

    Construction moves every parameter and its .grad into views of one flat buffer each (the
    parameters keep their values, shapes and memory formats); they must stay there, so set .grad
    to None or rebind .data nowhere else. Like ConvNetJS's `trainer.k`, `k` counts examples, and
    an update happens when k reaches a multiple of the current batch_size. Call begin_batch()
    before each backward: ConvNetJS zeroes the gradients as it applies them, here that waits for
    the next batch, so that between batches .grad still shows the last update's gradients.
    """

    def __init__(self, param_groups, *, method="sgd", learning_rate=0.01, momentum=0.9, batch_size=1,
                 l1_decay=0.0, l2_decay=0.0, ro=0.95, eps=None, beta1=0.9, beta2=0.999):
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
        self.method = method
        self.consts = {"ro": float(ro), "eps": default_eps(method) if eps is None else float(eps),
                       "beta1": float(beta1), "beta2": float(beta2)}
        self.param_groups = _groups(param_groups)
        self.params = [p for group in self.param_groups for p in group["params"]]
        if not self.params:
            raise ValueError("the optimizer got no parameters")
        first = self.params[0]
        if any(p.dtype != first.dtype or p.device != first.device for p in self.params):
            raise ValueError("all parameters must have one dtype and one device")
        self._flatten()
        self.state = {"gsum": torch.zeros_like(self.flat_params)}
        if method in _XSUM_METHODS:
            self.state["xsum"] = torch.zeros_like(self.flat_params)
        # Scratch for the batch gradient and the methods' temporaries: allocated once, reused every update.
        self._gij, self._tmp, self._den = (torch.empty_like(self.flat_params) for _ in range(3))
        self.k = 0  # examples trained so far, as ConvNetJS's trainer.k
        self._applied = False  # whether flat_grads holds gradients an update has used
        self.hyper = {}
        self.set_hyper(learning_rate=learning_rate, momentum=momentum, batch_size=batch_size,
                       l1_decay=l1_decay, l2_decay=l2_decay)

    def _flatten(self) -> None:
        """Rebind every parameter and .grad to views of flat_params and flat_grads; build the decay multipliers."""
        first = self.params[0]
        sizes = [p.numel() for p in self.params]
        for p in self.params:
            if not (p.is_contiguous() or p.is_contiguous(memory_format=torch.channels_last)):
                raise ValueError("parameters must be contiguous (NCHW or channels_last)")
        self.flat_params = torch.empty(sum(sizes), dtype=first.dtype, device=first.device)
        self.flat_grads = torch.zeros_like(self.flat_params)
        muls = {"l1_decay": [], "l2_decay": []}
        offset = 0
        with torch.no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    view = _view(self.flat_params, p, offset)
                    view.copy_(p)
                    grad = _view(self.flat_grads, p, offset)
                    if p.grad is not None:
                        grad.copy_(p.grad)
                    p.data, p.grad = view, grad
                    offset += p.numel()
                for name, values in muls.items():
                    values.append(torch.full((sum(q.numel() for q in group["params"]),), group[name + "_mul"],
                                             dtype=first.dtype, device=first.device))
        self._grad_views = [p.grad for p in self.params]
        # Per-element decay multipliers, None where every group's is 0 (then the term is skipped).
        self._muls = {name: torch.cat(values) if any(g[name + "_mul"] for g in self.param_groups) else None
                      for name, values in muls.items()}
        # The same in float64 for the decay losses, which ConvNetJS sums in float64.
        self._loss_muls = {name: None if mul is None else mul.to(torch.float64) for name, mul in self._muls.items()}

    def begin_batch(self) -> None:
        """Before a backward: clear the gradients the last update used, keep those still accumulating."""
        if self._applied:
            self.flat_grads.zero_()
            self._applied = False

    @property
    def until_update(self) -> int:
        """Examples still to train before the next update: k reaches the next multiple of batch_size."""
        return self.hyper["batch_size"] - self.k % self.hyper["batch_size"]

    def set_hyper(self, **changes) -> None:
        """Change live hyper-parameters; they apply from the next update on."""
        checked = {name: _check_hyper(name, value) for name, value in changes.items()}
        self.hyper = {**self.hyper, **checked}  # all validated before any is applied
        # Per-element decay coefficients l*mul (the products ConvNetJS forms per parameter list), None when all 0.
        self._decay = {}
        for name in ("l1_decay", "l2_decay"):
            mul = self._muls[name]
            self._decay[name] = None if mul is None or self.hyper[name] == 0 else mul * self.hyper[name]
        if self._decay["l1_decay"] is not None:
            self._decay["-l1_decay"] = -self._decay["l1_decay"]

    @torch.no_grad()
    def decay_loss(self) -> tuple[float, float]:
        """Return (l1_decay_loss, l2_decay_loss) of the current weights, summed in float64, in one host sync."""
        p64 = self.flat_params.to(torch.float64)
        terms = {name: torch.dot(per_weight(), self._loss_muls[name]) for name, per_weight in
                 (("l1_decay", p64.abs), ("l2_decay", p64.square)) if self._decay[name] is not None}
        sums = dict(zip(terms, torch.stack(list(terms.values())).tolist())) if terms else {}
        return (self.hyper["l1_decay"] * sums.get("l1_decay", 0.0),
                self.hyper["l2_decay"] * sums.get("l2_decay", 0.0) / 2)

    @torch.no_grad()
    def step(self, examples: int | None = None) -> bool:
        """Count `examples` more trained examples (default: up to the next update); update if k reaches a multiple of batch_size.

        Returns whether the weights were updated. A batch may not run past the next update, since
        ConvNetJS would have updated in its middle.
        """
        if any(p.grad is not view for p, view in zip(self.params, self._grad_views)):
            raise RuntimeError("a parameter's .grad was replaced (zero_grad(set_to_none=True)?): "
                               "gradients must accumulate in the optimizer's flat buffer")
        examples = self.until_update if examples is None else int(examples)
        if not 0 < examples <= self.until_update:
            raise ValueError(f"a batch of {examples} examples does not end at or before the next update, "
                             f"which is {self.until_update} examples away")
        self.k += examples
        if self.k % self.hyper["batch_size"]:
            return False  # as in ConvNetJS, the gradients keep accumulating towards the next update
        self._update(self._batch_gradient())
        self._applied = True
        return True

    def _batch_gradient(self) -> torch.Tensor:
        """gij = (l2*mul*p + l1*mul*sign(p) + g) / batch_size for every parameter, in the scratch buffer."""
        p, g, gij = self.flat_params, self.flat_grads, self._gij
        l1, l2 = self._decay["l1_decay"], self._decay["l2_decay"]
        if l2 is None:
            gij.copy_(g)
        else:
            torch.addcmul(g, l2, p, out=gij)
        if l1 is not None:
            # ConvNetJS uses (p > 0 ? 1 : -1): sign(0) is -1.
            torch.where(p > 0, l1, self._decay["-l1_decay"], out=self._tmp)
            gij.add_(self._tmp)
        return gij.div_(self.hyper["batch_size"])

    def _update(self, gij: torch.Tensor) -> None:
        """Move the parameters by the method's rule (convnet_trainers.js), as in-place operations on flat buffers."""
        p, m, tmp, den = self.flat_params, self.method, self._tmp, self._den
        lr, mom = self.hyper["learning_rate"], self.hyper["momentum"]
        ro, eps, b1, b2 = (self.consts[n] for n in _CONST_NAMES)
        gsum = self.state["gsum"]
        if m == "sgd":
            if mom > 0:  # dx = momentum*gsum - lr*gij; gsum = dx
                gsum.mul_(mom).add_(gij, alpha=-lr)
                p.add_(gsum)
            else:
                p.add_(gij, alpha=-lr)
        elif m == "nesterov":  # dx = momentum*gsum - (1+momentum)*gsum', gsum' = momentum*gsum + lr*gij
            torch.mul(gsum, mom, out=tmp)
            gsum.mul_(mom).add_(gij, alpha=lr)
            p.add_(tmp.sub_(gsum, alpha=1.0 + mom))
        elif m == "adam":
            # Bias corrections multiply by (1 - beta**k) rather than divide, with k counting examples, as upstream does.
            xsum = self.state["xsum"]
            gsum.mul_(b1).add_(gij, alpha=1 - b1)
            xsum.mul_(b2).addcmul_(gij, gij, value=1 - b2)
            torch.mul(xsum, 1 - b2 ** self.k, out=den).sqrt_().add_(eps)
            torch.mul(gsum, 1 - b1 ** self.k, out=tmp)
            p.addcdiv_(tmp, den, value=-lr)
        elif m == "adadelta":  # dx = -sqrt((xsum+eps)/(gsum+eps))*gij after gsum's update; then xsum
            xsum = self.state["xsum"]
            gsum.mul_(ro).addcmul_(gij, gij, value=1 - ro)
            torch.add(gsum, eps, out=den)
            torch.add(xsum, eps, out=tmp).div_(den).sqrt_().mul_(gij)  # -dx
            xsum.mul_(ro).addcmul_(tmp, tmp, value=1 - ro)
            p.sub_(tmp)
        else:  # adagrad sums gij^2, windowgrad keeps its moving average; then dx = -lr/sqrt(gsum+eps)*gij
            if m == "adagrad":
                gsum.addcmul_(gij, gij)
            else:
                gsum.mul_(ro).addcmul_(gij, gij, value=1 - ro)
            torch.add(gsum, eps, out=den).sqrt_()
            p.addcdiv_(gij, den, value=-lr)

    def _per_param(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """`flat` cut into one contiguous tensor per parameter: a layout that does not depend on memory formats."""
        out, offset = [], 0
        for p in self.params:
            out.append(_view(flat, p, offset).clone(memory_format=torch.contiguous_format))
            offset += p.numel()
        return out

    def _load_per_param(self, flat: torch.Tensor, tensors: list[torch.Tensor]) -> None:
        offset = 0
        for p, saved in zip(self.params, tensors, strict=True):
            if saved.shape != p.shape:
                raise ValueError(f"state_dict holds a tensor of shape {tuple(saved.shape)} for a parameter of "
                                 f"shape {tuple(p.shape)}")
            _view(flat, p, offset).copy_(saved)
            offset += p.numel()

    def state_dict(self) -> dict:
        """k, method, hyper-parameters, the accumulators and the gradients accumulated since the last update (or None)."""
        return {"method": self.method, "k": self.k, **self.consts, **self.hyper,
                "buffers": {name: self._per_param(buf) for name, buf in self.state.items()},
                "grads": None if self._applied else self._per_param(self.flat_grads)}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a state_dict() of an optimizer with the same method and parameter shapes."""
        saved = dict(state_dict)
        method = saved.pop("method")
        if method != self.method:
            raise ValueError(f"state_dict is for method {method!r}, not {self.method!r}")
        k = int(saved.pop("k"))
        buffers, grads = saved.pop("buffers"), saved.pop("grads")
        if set(buffers) != set(self.state) or (grads is not None and len(grads) != len(self.params)):
            raise ValueError("state_dict does not fit this optimizer's parameters")
        consts = {name: float(saved.pop(name)) for name in _CONST_NAMES}
        hyper = {name: _check_hyper(name, value) for name, value in saved.items()}
        with torch.no_grad():
            for name, tensors in buffers.items():
                self._load_per_param(self.state[name], tensors)
            if grads is None:
                self.flat_grads.zero_()
            else:
                self._load_per_param(self.flat_grads, grads)
        self.k, self.consts, self._applied = k, consts, False
        self.set_hyper(**hyper)
