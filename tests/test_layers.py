import pytest
import torch

from redcore_lite.layers import Dropout, dropout


@pytest.mark.parametrize("quantised", [False, True])
@pytest.mark.parametrize("p", [0.1, 0.2, 0.5])
def test_dropout_rate_and_unbiased(p, quantised):
    torch.manual_seed(0)
    x = torch.ones(400, 1000)
    y = dropout(x, p, True, quantised)
    assert abs(float((y == 0).float().mean()) - p) < 0.003
    assert abs(float(y.mean()) - 1.0) < 0.006
    kept = y[y != 0]
    scale = 65536 / (65536 - round(p * 65536)) if quantised else 1 / (1 - p)
    assert torch.allclose(kept, torch.full_like(kept, scale))


def test_dropout_identity_in_eval_and_seeded():
    x = torch.randn(3, 5, 7)
    assert dropout(x, 0.3, False) is x and dropout(x, 0.0, True) is x
    torch.manual_seed(1)
    a = Dropout(0.3).train()(x)
    torch.manual_seed(1)
    assert torch.equal(a, Dropout(0.3).train()(x))
    assert torch.equal(Dropout(0.3).eval()(x), x)


def test_dropout_gradient_is_the_mask():
    torch.manual_seed(0)
    x = torch.randn(50, 13, requires_grad=True)
    y = dropout(x, 0.4, True, quantised=True)
    y.sum().backward()
    assert torch.allclose(x.grad, (y / x).detach().nan_to_num())
