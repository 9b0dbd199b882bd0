"""NAdam: PyTorch's Adam with Nesterov momentum and momentum decay, with NAdamW's decoupled weight decay."""

from nbprop.backend import DEVICES, HOST
from nbprop.dtypes import get_default_dtype
from nbprop.optim.optimizer import Optimizer, check_moment_hyperparameters, host_array
from nbprop.tensor import Tensor


class NAdam(Optimizer):
    """`NAdam(params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, momentum_decay=4e-3,
    decoupled_weight_decay=False, *, foreach=None, maximize=False, capturable=False, differentiable=False)`:
    torch.optim.NAdam's update, one fused kernel call per group and dtype.

    State per parameter: 'step', 'mu_product' (the product of the momentum coefficients mu_1 ... mu_t, a 0-d
    tensor), 'exp_avg', 'exp_avg_sq'. As PyTorch holds 'mu_product' in its default scalar dtype, it is held
    in nbprop's default dtype at the optimizer's construction (float32 unless `set_default_dtype(float64)`),
    rounded there after every product, for float32 and float64 parameters alike.
    """

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, momentum_decay=4e-3,
                 decoupled_weight_decay=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False):
        if differentiable:
            raise NotImplementedError("NAdam: differentiable=True is not supported (updates are fused kernels)")
        self._product_dtype = get_default_dtype()
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        momentum_decay=momentum_decay, decoupled_weight_decay=decoupled_weight_decay,
                        maximize=maximize, foreach=foreach, capturable=capturable, differentiable=False)
        super().__init__(params, defaults)

    def _check_group(self, group):
        check_moment_hyperparameters(group)
        if not 0.0 <= group["momentum_decay"]:
            raise ValueError(f"Invalid momentum_decay value: {group['momentum_decay']}")

    def _state_names(self, group):
        return ("exp_avg", "exp_avg_sq")

    # 'mu_product' is one scalar per parameter: a per-bucket array beside the flat state, indexed like `steps`,
    # in host memory as PyTorch's (a CPU tensor unless capturable).

    def _products(self, bucket):
        products = getattr(bucket, "mu_product", None)
        if products is None:
            products = DEVICES[HOST].full((len(bucket.params),), 1.0, self._product_dtype)
            bucket.mu_product = products
        return products

    def _initialize(self, bucket, index, group):
        self._products(bucket)[index] = 1.0

    def _publish(self, bucket, index, group):
        super()._publish(bucket, index, group)
        parameter = bucket.params[index]
        entry = self.state[parameter]
        product = Tensor._make(self._products(bucket)[index:index + 1].reshape(()), None, HOST)
        # PyTorch's order of the state entries.
        self.state[parameter] = {"step": entry.pop("step"), "mu_product": product, **entry}

    def _flatten(self, group_index):
        saved = {}
        for bucket in self._buckets[group_index] or ():
            products = self._products(bucket)
            for index, parameter in enumerate(bucket.params):
                if bucket.initialized[index]:
                    saved[id(parameter)] = products[index]
        super()._flatten(group_index)
        self._restore_products(group_index, saved)

    def _restore_products(self, group_index, products_by_id):
        for bucket in self._buckets[group_index]:
            products = self._products(bucket)
            for index, parameter in enumerate(bucket.params):
                if id(parameter) in products_by_id:
                    products[index] = products_by_id[id(parameter)]

    def load_state_dict(self, state_dict):
        """Restore state saved by `state_dict()` (ours or PyTorch's): 'mu_product' included, see the class."""
        loaded_products = {}
        state = {}
        for key, entry in state_dict["state"].items():
            entry = dict(entry)
            product = entry.pop("mu_product", None)
            if product is not None:
                loaded_products[key] = float(host_array(product).reshape(-1)[0])
            elif any(value is not None for value in entry.values()):
                raise ValueError(f"NAdam.load_state_dict: the state of parameter {key} has no 'mu_product'")
            state[key] = entry
        super().load_state_dict({**state_dict, "state": state})
        for group_index, (saved, group) in enumerate(zip(state_dict["param_groups"], self.param_groups)):
            products_by_id = {id(parameter): loaded_products[key] for key, parameter in zip(saved["params"],
                                                                                         group["params"])
                              if key in loaded_products}
            self._restore_products(group_index, products_by_id)

    def _update(self, group, bucket, lr, fresh):
        beta1, beta2 = group["betas"]
        momentum_decay = float(group["momentum_decay"])
        products = self._products(bucket)
        active = bucket.active
        mu = beta1 * (1.0 - 0.5 * 0.96 ** (bucket.steps[active] * momentum_decay))
        # PyTorch's `mu_product *= mu` rounds the Python float mu to mu_product's dtype before multiplying.
        products[active] *= mu.astype(products.dtype)
        device = bucket.device
        device.call(
            "nadam_step", bucket.flat_param, bucket.flat_grad, bucket.states["exp_avg"], bucket.states["exp_avg_sq"],
            device.asarray(products), bucket.chunk_start, bucket.chunk_end, bucket.chunk_segment,
            device.asarray(active), device.asarray(bucket.steps), lr, float(beta1), float(beta2), float(group["eps"]),
            float(group["weight_decay"]), momentum_decay, bool(group["decoupled_weight_decay"]),
            bool(group["maximize"]), work=bucket.size)
