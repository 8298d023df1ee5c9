"""Tests for worker.optim against an independent pure-Python ConvNetJS oracle (the real trainer: test_convnetjs_oracle.py)."""
import copy
import io
import math
import random

import pytest
import torch

from worker.optim import METHODS, ConvNetJSOptimizer

REL = 1e-12
# (method, momentum): sgd's momentum 0 is its own code path in ConvNetJS.
CASES = [("sgd", 0.0), ("sgd", 0.9), ("nesterov", 0.9), ("adagrad", 0.9),
         ("adadelta", 0.9), ("windowgrad", 0.9), ("adam", 0.9)]
CASE_IDS = [f"{m}-mom{mom}" for m, mom in CASES]
# (shapes, l1_decay_mul, l2_decay_mul) per group; the second is like ConvNetJS biases.
LAYOUT = [([(3, 4), (2, 3, 2)], 1.0, 1.0), ([(4,), (2,)], 0.0, 0.0), ([(5,)], 0.5, 2.0)]
HYPER = dict(learning_rate=0.05, batch_size=4, l1_decay=0.01, l2_decay=0.02)
DEFAULT_EPS = {"sgd": 1e-6, "adam": 1e-8, "nesterov": 1e-8, "adagrad": 1e-6, "adadelta": 1e-6, "windowgrad": 1e-6}


class Oracle:
    """ConvNetJS's trainer update, element by element on lists of floats."""

    def __init__(self, groups, method, learning_rate=0.01, momentum=0.9, batch_size=1, l1_decay=0.0,
                 l2_decay=0.0, ro=0.95, eps=None, beta1=0.9, beta2=0.999):
        self.groups = [([list(p) for p in params], l1m, l2m) for params, l1m, l2m in groups]
        self.method, self.lr, self.mom, self.bs = method, learning_rate, momentum, batch_size
        self.l1, self.l2, self.ro, self.b1, self.b2 = l1_decay, l2_decay, ro, beta1, beta2
        self.eps = DEFAULT_EPS[method] if eps is None else eps
        self.gsum = [[[0.0] * len(p) for p in params] for params, _, _ in groups]
        self.xsum = copy.deepcopy(self.gsum)
        self.k = 0

    def step(self, grads):
        """Apply one batch up to the next multiple of bs; grads mirror the params; return the decay losses before it."""
        self.k += self.bs - self.k % self.bs
        l1_loss = l2_loss = 0.0
        for gi, (params, l1m, l2m) in enumerate(self.groups):
            l1, l2 = self.l1 * l1m, self.l2 * l2m
            for t, p in enumerate(params):
                gs, xs, g = self.gsum[gi][t], self.xsum[gi][t], grads[gi][t]
                for j in range(len(p)):
                    l2_loss += l2 * p[j] * p[j] / 2
                    l1_loss += l1 * abs(p[j])
                    gij = (l2 * p[j] + l1 * (1 if p[j] > 0 else -1) + g[j]) / self.bs
                    p[j] += self._dx(gs, xs, j, gij)
        return l1_loss, l2_loss

    def _dx(self, gs, xs, j, gij):
        """Update gsum/xsum at j and return the weight change."""
        m, lr, mom, ro, eps = self.method, self.lr, self.mom, self.ro, self.eps
        if m == "adam":
            gs[j] = gs[j] * self.b1 + (1 - self.b1) * gij
            xs[j] = xs[j] * self.b2 + (1 - self.b2) * gij * gij
            c1 = gs[j] * (1 - math.pow(self.b1, self.k))
            c2 = xs[j] * (1 - math.pow(self.b2, self.k))
            return -lr * c1 / (math.sqrt(c2) + eps)
        if m == "adagrad":
            gs[j] = gs[j] + gij * gij
            return -lr / math.sqrt(gs[j] + eps) * gij
        if m == "windowgrad":
            gs[j] = ro * gs[j] + (1 - ro) * gij * gij
            return -lr / math.sqrt(gs[j] + eps) * gij
        if m == "adadelta":
            gs[j] = ro * gs[j] + (1 - ro) * gij * gij
            dx = -math.sqrt((xs[j] + eps) / (gs[j] + eps)) * gij
            xs[j] = ro * xs[j] + (1 - ro) * dx * dx
            return dx
        if m == "nesterov":
            old = gs[j]
            gs[j] = gs[j] * mom + lr * gij
            return mom * old - (1 + mom) * gs[j]
        if mom > 0:
            gs[j] = mom * gs[j] - lr * gij
            return gs[j]
        return -lr * gij

    def flat(self):
        """Return all parameters as one list."""
        return [v for params, _, _ in self.groups for p in params for v in p]


def make_params(seed, dtype=torch.float64):
    """Build random parameter groups per LAYOUT, with one exact zero to exercise sign(0) = -1."""
    rng = random.Random(seed)
    groups = []
    for shapes, l1m, l2m in LAYOUT:
        params = [torch.tensor([rng.gauss(0, 1) for _ in range(math.prod(s))], dtype=dtype).reshape(s)
                  for s in shapes]
        groups.append((params, l1m, l2m))
    groups[0][0][0].view(-1)[0] = 0.0
    return groups


def torch_groups(groups):
    """Turn (params, l1m, l2m) tuples into optimizer param groups."""
    return [{"params": params, "l1_decay_mul": l1m, "l2_decay_mul": l2m} for params, l1m, l2m in groups]


def oracle_groups(groups):
    """Turn (params, l1m, l2m) tuples into the oracle's lists of floats."""
    return [([p.reshape(-1).tolist() for p in params], l1m, l2m) for params, l1m, l2m in groups]


def random_grads(rng, groups):
    """Set random gradient sums on every param (into the optimizer's buffer) and return them as nested lists."""
    out = []
    for params, _, _ in groups:
        out.append([])
        for p in params:
            g = [rng.gauss(0, 2) for _ in range(p.numel())]
            p.grad.copy_(torch.tensor(g, dtype=p.dtype).reshape(p.shape))
            out[-1].append(g)
    return out


def flat(groups):
    """Return all parameter values as one list."""
    return [v for params, _, _ in groups for p in params for v in p.reshape(-1).tolist()]


def assert_close(actual, expected):
    """Assert elementwise relative closeness at REL."""
    assert len(actual) == len(expected)
    for i, (a, e) in enumerate(zip(actual, expected)):
        assert math.isclose(a, e, rel_tol=REL, abs_tol=0.0), (i, a, e)


def run_steps(opt, groups, rng, steps):
    """Run steps with random gradients."""
    for _ in range(steps):
        random_grads(rng, groups)
        opt.step()


@pytest.mark.parametrize("method,momentum", CASES, ids=CASE_IDS)
def test_matches_oracle(method, momentum):
    groups = make_params(1)
    opt = ConvNetJSOptimizer(torch_groups(groups), method=method, momentum=momentum, **HYPER)
    oracle = Oracle(oracle_groups(groups), method, momentum=momentum, **HYPER)
    rng = random.Random(2)
    for _ in range(6):
        grads = random_grads(rng, groups)
        l1_loss, l2_loss = opt.decay_loss()
        assert_close([l1_loss, l2_loss], list(oracle.step(grads)))
        opt.step()
        assert_close(flat(groups), oracle.flat())
    assert opt.k == 6 * HYPER["batch_size"]


@pytest.mark.parametrize("method,momentum", CASES, ids=CASE_IDS)
def test_set_hyper_applies_from_next_step(method, momentum):
    groups = make_params(3)
    opt = ConvNetJSOptimizer(torch_groups(groups), method=method, momentum=momentum, **HYPER)
    oracle = Oracle(oracle_groups(groups), method, momentum=momentum, **HYPER)
    rng = random.Random(4)
    changes = dict(learning_rate=0.02, momentum=momentum / 2, batch_size=3, l1_decay=0.03, l2_decay=0.005)
    for step in range(5):
        if step == 2:
            opt.set_hyper(**changes)
            oracle.lr, oracle.mom, oracle.bs = changes["learning_rate"], changes["momentum"], changes["batch_size"]
            oracle.l1, oracle.l2 = changes["l1_decay"], changes["l2_decay"]
        oracle.step(random_grads(rng, groups))
        opt.step()
        assert_close(flat(groups), oracle.flat())
    # From k = 8 the next multiple of 3 is 9: that update comes after one example, then every 3.
    assert opt.k == oracle.k == 2 * 4 + 1 + 2 * 3


@pytest.mark.parametrize("changes", [
    {"ro": 0.5}, {"lr": 0.1}, {"method": "adam"}, {"batch_size": 0}, {"batch_size": 2.0},
    {"batch_size": True}, {"learning_rate": -0.1}, {"momentum": float("nan")}, {"l2_decay": "0.1"},
    {"learning_rate": 0.5, "eps": 1e-3},
])
def test_set_hyper_rejects_bad_changes_atomically(changes):
    opt = ConvNetJSOptimizer([torch.zeros(2, dtype=torch.float64)], **HYPER)
    before = dict(opt.hyper)
    with pytest.raises(ValueError):
        opt.set_hyper(**changes)
    assert opt.hyper == before


@pytest.mark.parametrize("method,expected", sorted(DEFAULT_EPS.items()))
def test_eps_defaults(method, expected):
    assert set(DEFAULT_EPS) == set(METHODS)
    params = [torch.zeros(2, dtype=torch.float64)]
    assert ConvNetJSOptimizer(params, method=method).consts["eps"] == expected
    assert ConvNetJSOptimizer(params, method=method, eps=1e-3).consts["eps"] == 1e-3


@pytest.mark.parametrize("method,momentum", CASES, ids=CASE_IDS)
def test_state_dict_round_trip_continues_identically(method, momentum):
    groups = make_params(5)
    opt = ConvNetJSOptimizer(torch_groups(groups), method=method, momentum=momentum, **HYPER)
    opt.set_hyper(learning_rate=0.03, batch_size=3, l2_decay=0.01)  # must survive the checkpoint
    rng = random.Random(6)
    run_steps(opt, groups, rng, 3)
    buf = io.BytesIO()
    torch.save({"opt": opt.state_dict(), "params": [[p.clone() for p in ps] for ps, _, _ in groups]}, buf)
    rng_state = rng.getstate()
    run_steps(opt, groups, rng, 3)

    buf.seek(0)
    ckpt = torch.load(buf)
    resumed = [(ps, l1m, l2m) for ps, (_, l1m, l2m) in zip(ckpt["params"], groups)]
    fresh = ConvNetJSOptimizer(torch_groups(resumed), method=method)  # other hypers come from the checkpoint
    fresh.load_state_dict(ckpt["opt"])
    rng.setstate(rng_state)
    run_steps(fresh, resumed, rng, 3)

    assert fresh.k == opt.k == 18
    assert fresh.hyper == opt.hyper
    for ps_a, ps_b in zip(groups, resumed):
        for a, b in zip(ps_a[0], ps_b[0]):
            assert torch.equal(a, b)


def test_load_state_dict_rejects_other_method():
    params = [torch.zeros(2, dtype=torch.float64)]
    sd = ConvNetJSOptimizer(params, method="adam").state_dict()
    with pytest.raises(ValueError, match="adam"):
        ConvNetJSOptimizer(params, method="sgd").load_state_dict(sd)


@pytest.mark.parametrize("kwargs,groups", [
    ({"method": "rmsprop"}, None),
    ({}, [{"params": [torch.zeros(1)], "lr": 0.1}]),
    ({}, [{"params": [torch.zeros(1)], "l2_decay_multiplier": 0.0}]),
])
def test_constructor_rejects_unknown_method_and_group_keys(kwargs, groups):
    with pytest.raises(ValueError):
        ConvNetJSOptimizer(groups or [torch.zeros(1)], **kwargs)


def test_sign_of_zero_is_minus_one_for_l1():
    p = torch.zeros(1, dtype=torch.float64)
    opt = ConvNetJSOptimizer([p], method="sgd", momentum=0.0, learning_rate=1.0, l1_decay=0.1)
    opt.step()
    assert p.item() == 0.1


def test_a_parameter_backward_never_reaches_still_decays():
    used, unused = (torch.ones(n, dtype=torch.float64, requires_grad=True) for n in (2, 3))
    opt = ConvNetJSOptimizer([used, unused], method="sgd", momentum=0.0, learning_rate=0.5, l2_decay=0.1)
    used.mul(2.0).sum().backward()
    opt.step()
    assert used.tolist() == [1 - 0.5 * (2 + 0.1)] * 2
    assert unused.tolist() == [1 - 0.5 * 0.1] * 3


@pytest.mark.parametrize("method,momentum", CASES, ids=CASE_IDS)
def test_an_update_comes_only_when_k_reaches_a_multiple_of_batch_size(method, momentum):
    """ConvNetJS counts examples and updates when k % batch_size == 0: sub-batches accumulate into one update."""
    whole, parts = make_params(10), make_params(10)
    opts = [ConvNetJSOptimizer(torch_groups(g), method=method, momentum=momentum, **HYPER) for g in (whole, parts)]
    grads = random_grads(random.Random(11), whole)
    assert opts[0].step() is True and opts[0].k == 4
    for p, g in zip((p for ps, _, _ in parts for p in ps), (g for gs in grads for g in gs)):
        p.grad.copy_(torch.tensor(g, dtype=p.dtype).reshape(p.shape) / 2)
    before = flat(parts)
    assert opts[1].step(1) is False and opts[1].until_update == 3 and flat(parts) == before
    for p in (p for ps, _, _ in parts for p in ps):
        p.grad.mul_(2)  # the second half of the batch adds its gradient to the first half's
    assert opts[1].step(3) is True and opts[1].k == 4 and opts[1].until_update == 4
    assert_close(flat(parts), flat(whole))
    opts[1].begin_batch()  # the next batch starts from zero gradients, as ConvNetJS zeroes them when it updates
    assert all(p.grad.eq(0).all() for ps, _, _ in parts for p in ps)


def test_a_batch_may_not_run_past_the_next_update():
    opt = ConvNetJSOptimizer([torch.zeros(2)], batch_size=5)
    opt.step(3)
    with pytest.raises(ValueError, match="2 examples away"):
        opt.step(3)


def test_a_live_batch_size_change_brings_the_next_update_to_the_next_multiple():
    opt = ConvNetJSOptimizer([torch.zeros(2)], batch_size=20)
    opt.step()
    opt.step()
    opt.set_hyper(batch_size=30)
    assert opt.k == 40 and opt.until_update == 20
    opt.set_hyper(batch_size=40)
    assert opt.until_update == 40  # k = 40 is a multiple: a whole batch


def test_parameters_become_views_of_one_flat_buffer_and_keep_their_layout():
    conv = torch.nn.Conv2d(2, 3, 3).to(memory_format=torch.channels_last)
    weight, bias = conv.weight.detach().clone(), conv.bias.detach().clone()
    opt = ConvNetJSOptimizer([{"params": [conv.weight], "l2_decay_mul": 1.0}, {"params": [conv.bias], "l2_decay_mul": 0.0}])
    assert torch.equal(conv.weight, weight) and torch.equal(conv.bias, bias)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert conv.weight.untyped_storage().data_ptr() == opt.flat_params.untyped_storage().data_ptr()
    conv(torch.ones(1, 2, 4, 4)).sum().backward()
    assert opt.flat_grads.abs().sum() > 0  # backward accumulated into the flat buffer
    conv.zero_grad()  # set_to_none: the gradients would leave the buffer
    with pytest.raises(RuntimeError, match="replaced"):
        opt.step()


@pytest.mark.parametrize("method", METHODS)
def test_float32_tracks_float64(method):
    g64, g32 = make_params(9), make_params(9, torch.float32)
    opts = [ConvNetJSOptimizer(torch_groups(g), method=method, **HYPER) for g in (g64, g32)]
    for step in range(5):
        for g, opt in zip((g64, g32), opts):
            random_grads(random.Random(step), g)
            opt.step()
    for a, b in zip(flat(g64), flat(g32)):
        assert math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-5)
    assert all(s.dtype == torch.float32 for s in opts[1].state.values())
