"""ConvNetJS SGDTrainer update rules as a vectorised torch optimizer."""
from __future__ import annotations

import math
from numbers import Real

import torch

from service.spec.schemas import METHODS, SMALL_EPS_METHODS
from service.spec.schemas import TRAINER_LIVE_FIELDS as HYPER_NAMES

_CONST_NAMES = ("ro", "eps", "beta1", "beta2")
# npm convnetjs 0.3.0 defaults eps to 1e-6 (it has no adam/nesterov); the later
# upstream trainer that added adam defaults to 1e-8.
_EPS_DEFAULTS = dict.fromkeys(SMALL_EPS_METHODS, 1e-6)
# A typo such as "l2_decay_multiplier" would otherwise be silently ignored.
_GROUP_KEYS = {"params", "param_names", "l1_decay_mul", "l2_decay_mul"}


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


class ConvNetJSOptimizer(torch.optim.Optimizer):
    """Applies ConvNetJS's per-batch update, with .grad holding the batch's gradient sum."""

    def __init__(self, param_groups, *, method="sgd", learning_rate=0.01, momentum=0.9, batch_size=1,
                 l1_decay=0.0, l2_decay=0.0, ro=0.95, eps=None, beta1=0.9, beta2=0.999):
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
        self.method = method
        self.consts = {"ro": float(ro), "eps": _EPS_DEFAULTS.get(method, 1e-8) if eps is None else float(eps),
                       "beta1": float(beta1), "beta2": float(beta2)}
        self.hyper = {}
        self.set_hyper(learning_rate=learning_rate, momentum=momentum, batch_size=batch_size,
                       l1_decay=l1_decay, l2_decay=l2_decay)
        self.k = 0  # examples trained so far, as ConvNetJS's trainer.k
        super().__init__(param_groups, {"l1_decay_mul": 1.0, "l2_decay_mul": 1.0})

    def add_param_group(self, param_group):
        """Add a group, rejecting keys other than params and the two decay muls."""
        unknown = set(param_group) - _GROUP_KEYS
        if unknown:
            raise ValueError(f"unsupported param group keys {sorted(unknown)}; allowed: {sorted(_GROUP_KEYS)}")
        super().add_param_group(param_group)

    def set_hyper(self, **changes):
        """Change live hyper-parameters; they apply from the next step on."""
        checked = {name: _check_hyper(name, value) for name, value in changes.items()}
        self.hyper = {**self.hyper, **checked}  # all validated before any is applied

    @torch.no_grad()
    def decay_loss(self) -> tuple[float, float]:
        """Return (l1_decay_loss, l2_decay_loss) of the current weights, summed in float64."""
        l1_terms, l2_terms = [], []
        for group in self.param_groups:
            l1 = self.hyper["l1_decay"] * group["l1_decay_mul"]
            l2 = self.hyper["l2_decay"] * group["l2_decay_mul"]
            for p in group["params"]:
                p64 = p.detach().to(torch.float64)
                if l1:
                    l1_terms.append(p64.abs().sum() * l1)
                if l2:
                    l2_terms.append(p64.square().sum() * l2 / 2)
        # One host sync for both sums.
        totals = [torch.stack(t).sum() if t else None for t in (l1_terms, l2_terms)]
        return tuple(0.0 if t is None else float(t) for t in totals)

    @torch.no_grad()
    def step(self, closure=None):
        """Apply one ConvNetJS batch update to every parameter."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.k += self.hyper["batch_size"]  # ConvNetJS updates once k reaches a multiple of batch_size
        # Decay differs per group, the update rule does not: one _update pass over all params.
        params = [p for group in self.param_groups for p in group["params"]]
        if params:
            self._update(params, [g for group in self.param_groups for g in self._batch_grads(group)])
        return loss

    def _batch_grads(self, group):
        """Return gij = (l2*p + l1*sign(p) + g) / batch_size per tensor of the group."""
        h, params = self.hyper, list(group["params"])
        if not params:
            return []
        # A missing grad is a zero gradient: ConvNetJS still decays and moves every weight.
        grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in params]
        l1 = h["l1_decay"] * group["l1_decay_mul"]
        l2 = h["l2_decay"] * group["l2_decay_mul"]
        if l1 == 0 and l2 == 0:  # e.g. biases: skip the zero decay terms
            return torch._foreach_div(grads, h["batch_size"])
        gij = torch._foreach_add(grads, params, alpha=l2)  # g + l2*p in one pass: this runs every batch
        if l1 != 0:
            # ConvNetJS uses (p > 0 ? 1 : -1), so sign(0) must be -1: sign(sign(p) - 0.5).
            sgn = torch._foreach_sign(params)
            torch._foreach_sub_(sgn, 0.5)
            torch._foreach_sign_(sgn)
            torch._foreach_add_(gij, sgn, alpha=l1)
        torch._foreach_div_(gij, h["batch_size"])
        return gij

    def _bufs(self, params, name):
        """Return the named zero-initialised state tensor of each param."""
        out = []
        for p in params:
            state = self.state[p]
            if name not in state:
                state[name] = torch.zeros_like(p, memory_format=torch.preserve_format)
            out.append(state[name])
        return out

    def _update(self, params, gij):
        """Move params by the method's rule; gij is scratch and gets overwritten."""
        m, lr, mom = self.method, self.hyper["learning_rate"], self.hyper["momentum"]
        ro, eps, b1, b2 = (self.consts[n] for n in _CONST_NAMES)
        if m == "sgd" and not mom > 0:
            torch._foreach_mul_(gij, -lr)
            torch._foreach_add_(params, gij)
            return
        gsum = self._bufs(params, "gsum")
        if m == "sgd":  # dx = momentum*gsum - lr*gij; gsum = dx
            torch._foreach_mul_(gsum, mom)
            torch._foreach_mul_(gij, lr)
            torch._foreach_sub_(gsum, gij)
            torch._foreach_add_(params, gsum)
        elif m == "nesterov":  # dx = momentum*old - (1+momentum)*new, new = momentum*old + lr*gij
            dx = torch._foreach_mul(gsum, mom)
            torch._foreach_mul_(gij, lr)
            torch._foreach_add_(gij, dx)
            torch._foreach_copy_(gsum, gij)
            torch._foreach_mul_(gij, 1.0 + mom)
            torch._foreach_sub_(dx, gij)
            torch._foreach_add_(params, dx)
        elif m == "adam":
            torch._foreach_mul_(gsum, b1)
            torch._foreach_add_(gsum, torch._foreach_mul(gij, 1 - b1))
            xsum = self._bufs(params, "xsum")
            sq = torch._foreach_mul(gij, 1 - b2)
            torch._foreach_mul_(sq, gij)
            torch._foreach_mul_(xsum, b2)
            torch._foreach_add_(xsum, sq)
            # ConvNetJS multiplies by (1 - beta**k) instead of dividing, with k counting examples.
            num = torch._foreach_mul(gsum, 1 - b1 ** self.k)
            torch._foreach_mul_(num, -lr)
            den = torch._foreach_mul(xsum, 1 - b2 ** self.k)
            torch._foreach_sqrt_(den)
            torch._foreach_add_(den, eps)
            torch._foreach_div_(num, den)
            torch._foreach_add_(params, num)
        elif m == "adadelta":
            # gsum = ro*gsum + (1-ro)*gij^2; dx = -sqrt((xsum+eps)/(gsum+eps))*gij; xsum = ro*xsum + (1-ro)*dx^2.
            # Fused multiply-adds and the sign folded into the final subtraction: this runs every batch.
            xsum = self._bufs(params, "xsum")
            torch._foreach_mul_(gsum, ro)
            torch._foreach_addcmul_(gsum, gij, gij, value=1 - ro)
            den = torch._foreach_add(gsum, eps)
            step = torch._foreach_add(xsum, eps)
            torch._foreach_div_(step, den)
            torch._foreach_sqrt_(step)
            torch._foreach_mul_(step, gij)  # -dx
            torch._foreach_mul_(xsum, ro)
            torch._foreach_addcmul_(xsum, step, step, value=1 - ro)
            torch._foreach_sub_(params, step)
        else:
            if m == "adagrad":
                sq = torch._foreach_mul(gij, gij)
            else:  # windowgrad: gsum = ro*gsum + (1-ro)*gij*gij, multiplied left to right as JS does
                sq = torch._foreach_mul(gij, 1 - ro)
                torch._foreach_mul_(sq, gij)
                torch._foreach_mul_(gsum, ro)
            torch._foreach_add_(gsum, sq)
            # dx = -lr / sqrt(gsum+eps) * gij
            den = torch._foreach_add(gsum, eps)
            torch._foreach_sqrt_(den)
            # Fill with -lr and divide: torch's scalar/tensor goes via reciprocal, which rounds differently.
            dx = sq
            torch._foreach_zero_(dx)
            torch._foreach_add_(dx, -lr)
            torch._foreach_div_(dx, den)
            torch._foreach_mul_(dx, gij)
            torch._foreach_add_(params, dx)

    def state_dict(self):
        """Return torch's optimizer state plus k, method and all hyper-parameters."""
        sd = super().state_dict()
        sd["convnetjs"] = {"method": self.method, "k": self.k, **self.consts, **self.hyper}
        return sd

    def load_state_dict(self, state_dict):
        """Restore a state_dict() of an optimizer with the same method and param layout."""
        state_dict = dict(state_dict)
        saved = dict(state_dict.pop("convnetjs"))
        method = saved.pop("method")
        if method != self.method:
            raise ValueError(f"state_dict is for method {method!r}, not {self.method!r}")
        k = saved.pop("k")
        consts = {name: float(saved.pop(name)) for name in _CONST_NAMES}
        hyper = {name: _check_hyper(name, value) for name, value in saved.items()}
        super().load_state_dict(state_dict)
        self.k, self.consts, self.hyper = int(k), consts, {**self.hyper, **hyper}
