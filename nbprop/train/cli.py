"""The main job, `nbprop-train` / `python -m nbprop.train`: trains a model on a real data set, printing progress and
test accuracy, and writes a checkpoint, the weights, the history and a PNG of its curves to an output directory.
With no arguments: a small CNN on scikit-learn's 8x8 digits, about 98% test accuracy in well under a minute."""

import argparse
import json
import math
import os
import sys
import time

from numba.core import event

__all__ = ["main", "parser"]

# name: (kind, what it is). "image" samples are (1, H, W) scaled to [0, 1]; "signal" samples (1, L) and "table"
# rows (features,) are standardised with the training split's mean and deviation.
DATASETS = {
    "digits": ("image", "scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes)"),
    "fashion-mnist": ("image", "Fashion-MNIST (60,000 + 10,000 28x28 images of clothes, 10 classes)"),
    "mnist1d": ("signal", "MNIST-1D (5,000 generated 1-D signals of length 40, 10 classes)"),
    "breast-cancer": ("table", "scikit-learn's breast cancer (569 rows of 30 features, 2 classes)"),
}
OPTIMIZERS = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD", "rmsprop": "RMSprop"}
DEFAULT_LR = {"adam": 3e-3, "adamw": 3e-3, "sgd": 0.05, "rmsprop": 1e-3}
SCHEDULES = ("cosine", "onecycle", "step", "plateau", "none")
CHECKPOINT, WEIGHTS, HISTORY, CURVES, CONFIG = ("checkpoint.safetensors", "model.safetensors", "history.json",
                                                "curves.png", "config.json")
# The options a resumed run must share with the run it continues (epochs may grow).
SAME_ON_RESUME = ("model", "dataset", "batch_size", "optimizer", "lr", "schedule", "seed", "validation")


class _Error(Exception):
    """A problem with the command line or the data, reported as one line without a traceback."""


def _models():
    from nbprop import nn

    names = ["mlp", "cnn"]
    return names + (["lstm"] if hasattr(nn, "LSTM") else [])


def parser():
    """The command line's argparse parser."""
    arguments = argparse.ArgumentParser(
        prog="nbprop-train", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Train a model with nbprop on a real data set that installs offline; prints progress and the "
                    "test accuracy, and writes a checkpoint (resumable), the weights, the history and a PNG of the "
                    "curves to --out. With no arguments: a small CNN on scikit-learn's 8x8 digits.",
        epilog="data sets: " + "; ".join(f"{name}: {about}" for name, (_, about) in DATASETS.items()))
    arguments.add_argument("--model", choices=_models(), default="cnn",
                           help="mlp: two hidden layers; cnn: convolution, batch norm, max pooling, a residual block; "
                                "lstm (where nbprop.nn.LSTM exists): reads images row by row, signals step by step")
    arguments.add_argument("--dataset", choices=list(DATASETS), default="digits")
    arguments.add_argument("--data-dir", default=None,
                           help="where fashion-mnist's IDX files are (default: where Debian's dataset-fashion-mnist "
                                "package installs them)")
    arguments.add_argument("--epochs", type=int, default=10)
    arguments.add_argument("--batch-size", type=int, default=64)
    arguments.add_argument("--optimizer", choices=list(OPTIMIZERS), default="adam")
    arguments.add_argument("--lr", type=float, default=None,
                           help="learning rate (default: " + ", ".join(f"{name} {rate:g}" for name, rate in
                                                                       DEFAULT_LR.items()) + ")")
    arguments.add_argument("--schedule", choices=SCHEDULES, default="cosine",
                           help="cosine: anneal to 0 over the epochs; onecycle: per step; step: x0.5 every third "
                                "epoch; plateau: x0.1 when the validation loss stalls")
    arguments.add_argument("--validation", type=float, default=0.1,
                           help="the fraction of the training data held out to validate each epoch")
    arguments.add_argument("--patience", type=int, default=None,
                           help="stop after this many epochs without a better validation loss (best weights kept)")
    arguments.add_argument("--clip", type=float, default=None, help="clip the gradients' total norm to this value")
    arguments.add_argument("--seed", type=int, default=0)
    arguments.add_argument("--threads", type=int, default=None, help="Numba's and BLAS's threads (default: all cores)")
    arguments.add_argument("--device", default="cpu")
    arguments.add_argument("--out", default=None, help="output directory (default: runs/<dataset>-<model>)")
    arguments.add_argument("--resume", nargs="?", const="", default=None, metavar="CHECKPOINT",
                           help=f"continue an interrupted run from CHECKPOINT (default: --out's {CHECKPOINT}) with "
                                "the same options; it goes on exactly as if uninterrupted")
    arguments.add_argument("--no-progress", action="store_true", help="no progress bar")
    arguments.add_argument("--compile", action="store_true",
                           help="capture the training step once and replay it (nbprop.compile): less Python per "
                                "step, which pays for small models and batches")
    return arguments


def _check_options(options):
    for name in ("epochs", "batch_size"):
        value = getattr(options, name)
        if value < (0 if name == "epochs" else 1):
            raise _Error(f"--{name.replace('_', '-')} must be {'>= 0' if name == 'epochs' else 'positive'}, "
                         f"got {value}")
    if options.lr is not None and not (math.isfinite(options.lr) and options.lr > 0):
        raise _Error(f"--lr must be a positive number, got {options.lr}")
    if not 0 < options.validation < 0.5:
        raise _Error(f"--validation must be a fraction in (0, 0.5), got {options.validation}")
    if options.threads is not None:
        import numba

        if not 1 <= options.threads <= numba.config.NUMBA_NUM_THREADS:
            raise _Error(f"--threads must be in 1..{numba.config.NUMBA_NUM_THREADS} (this machine's Numba threads), "
                         f"got {options.threads}")
        numba.set_num_threads(options.threads)
        try:  # BLAS's threads too: OpenBLAS threads spinning beside Numba's on busy cores cost up to 100x in a
            import threadpoolctl  # small matmul (measured on 2 shared cores); scikit-learn brings threadpoolctl

            threadpoolctl.threadpool_limits(options.threads)
        except ImportError:
            pass
    from nbprop.backend import DEVICES

    if options.device not in DEVICES:
        raise _Error(f"--device {options.device!r} is not available; the devices are {sorted(DEVICES)}")
    if options.lr is None:
        options.lr = DEFAULT_LR[options.optimizer]
    if options.out is None:
        options.out = os.path.join("runs", f"{options.dataset}-{options.model}")


def _load(options):
    """Train, validation and test tensors ((features, labels) each) and the sample kind, prepared for training."""
    import nbprop
    from nbprop.data import StandardScaler, datasets, train_test_split

    kind = DATASETS[options.dataset][0]
    try:
        if options.dataset == "digits":
            features, labels = datasets.load_digits()
            features = features.reshape(-1, 1, 8, 8)
        elif options.dataset == "breast-cancer":
            features, labels = datasets.load_breast_cancer()
        if options.dataset in ("digits", "breast-cancer"):
            features, test_features, labels, test_labels = train_test_split(
                features, labels, test_size=0.2, stratify=labels, random_state=options.seed)
        elif options.dataset == "fashion-mnist":
            root = options.data_dir or datasets.FASHION_MNIST_ROOT
            features, labels = datasets.fashion_mnist(root, train=True)
            test_features, test_labels = datasets.fashion_mnist(root, train=False)
        else:
            features, labels = datasets.mnist1d(train=True)
            test_features, test_labels = datasets.mnist1d(train=False)
    except (FileNotFoundError, ImportError) as error:
        raise _Error(str(error)) from error
    features, val_features, labels, val_labels = train_test_split(
        features, labels, test_size=options.validation, stratify=labels, random_state=options.seed + 1)
    if kind == "image":
        scale = features.max().item() or 1.0  # digits count 0..16, Fashion-MNIST is already in [0, 1]
        features, val_features, test_features = (data / scale for data in (features, val_features, test_features))
    else:
        flat = features.reshape(features.shape[0], -1)
        scaler = StandardScaler().fit(flat)
        shape = (1, -1) if kind == "signal" else (-1,)
        features, val_features, test_features = (
            scaler.transform(data.reshape(data.shape[0], -1)).reshape(data.shape[0], *shape)
            for data in (features, val_features, test_features))
    splits = [(data.to(options.device), target.to(options.device)) for data, target in
              ((features, labels), (val_features, val_labels), (test_features, test_labels))]
    classes = int(nbprop.cat([labels, val_labels, test_labels]).max().item()) + 1
    return splits, kind, classes


def _model(options, kind, sample_shape, classes):
    from nbprop.train import models

    if options.model == "mlp":
        return models.mlp(sample_shape, classes)
    if kind == "table":
        raise _Error(f"--model {options.model} needs images or signals; {options.dataset} is a table of features (its "
                     "columns have no order to convolve or read in sequence): use --model mlp")
    return getattr(models, options.model)(sample_shape, classes)


def _optimizer(options, model, steps_per_epoch):
    from nbprop import optim

    parameters = model.parameters()
    if options.optimizer == "sgd":
        optimizer = optim.SGD(parameters, lr=options.lr, momentum=0.9, nesterov=True)
    elif options.optimizer == "adamw":
        optimizer = optim.AdamW(parameters, lr=options.lr, weight_decay=1e-2)
    else:
        optimizer = getattr(optim, OPTIMIZERS[options.optimizer])(parameters, lr=options.lr)
    scheduler, interval = None, "epoch"
    if options.schedule == "cosine":
        scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(options.epochs, 1))
    elif options.schedule == "onecycle":
        scheduler = optim.lr_scheduler.OneCycleLR(optimizer, max_lr=options.lr, epochs=max(options.epochs, 1),
                                                  steps_per_epoch=steps_per_epoch)
        interval = "step"
    elif options.schedule == "step":
        scheduler = optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.5)
    elif options.schedule == "plateau":
        scheduler = optim.lr_scheduler.ReduceLROnPlateau(optimizer, patience=2)
    return optimizer, scheduler, interval


def _configuration(options):
    return {name: getattr(options, name) for name in SAME_ON_RESUME + ("epochs",)}


def _check_resume(options):
    """The checkpoint to resume from, after checking the saved options agree with these."""
    path = options.resume or os.path.join(options.out, CHECKPOINT)
    if not os.path.isfile(path):
        raise _Error(f"--resume: no checkpoint at {path!r} (train first, or pass the checkpoint's path)")
    saved_path = os.path.join(os.path.dirname(path), CONFIG)
    if os.path.isfile(saved_path):
        with open(saved_path) as handle:
            saved = json.load(handle)
        different = [f"--{name.replace('_', '-')} {saved[name]} (now {getattr(options, name)})"
                     for name in SAME_ON_RESUME if name in saved and saved[name] != getattr(options, name)]
        if different:
            raise _Error(f"--resume: {path!r} was trained with " + ", ".join(different) +
                         "; pass the same options to continue it")
    return path


class _CompileNotice(event.Listener):
    """Says once, on stderr, that Numba is compiling kernels (a first run spends its first seconds there; loading a
    kernel from the on-disk cache is not a compilation)."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def on_start(self, compile_event):
        if not self.count:
            print("nbprop: compiling kernels, about 30 s on a first run (later runs load them from the cache)",
                  file=sys.stderr, flush=True)
        self.count += 1

    def on_end(self, compile_event):
        pass


def run(options, notice=None):
    """Train as `options` (parsed by `parser()`) say; returns the test accuracy. `notice`: the compile notice, to
    say whether the time includes compilation."""
    start = time.perf_counter()
    _check_options(options)
    resume = _check_resume(options) if options.resume is not None else False
    import nbprop
    from nbprop import nn
    from nbprop.data import DataLoader, TensorDataset
    from nbprop.train import EarlyStopping, evaluate, fit

    nbprop.manual_seed(options.seed)
    (train, validation, test), kind, classes = _load(options)
    sample_shape = tuple(train[0].shape[1:])
    model = _model(options, kind, sample_shape, classes).to(options.device)
    shuffle = nbprop.Generator(device=options.device).manual_seed(options.seed)
    train_loader = DataLoader(TensorDataset(*train), batch_size=options.batch_size, shuffle=True, generator=shuffle)
    val_loader = DataLoader(TensorDataset(*validation), batch_size=512)
    test_loader = DataLoader(TensorDataset(*test), batch_size=512)
    # Under mpiexec/srun with N processes: DDP and each rank's share of the data; only rank 0 writes and prints.
    trained, train_loader, main_rank = nbprop.distributed.prepare_data_parallel(model, train_loader, options.seed)
    if options.compile and trained is not model:
        raise _Error("--compile does not combine with data-parallel ranks yet: the gradients' all-reduce runs in "
                     "Python hooks, which a captured step does not replay")
    say = print if main_rank else (lambda *args, **kwargs: None)
    optimizer, scheduler, interval = _optimizer(options, model, len(train_loader))
    count = sum(parameter.numel() for parameter in model.parameters())
    say(f"nbprop-train: {options.dataset}: {len(train[1]):,} training, {len(validation[1]):,} validation, "
          f"{len(test[1]):,} test samples of shape {sample_shape}, {classes} classes; {options.model} with {count:,} "
          f"parameters; {options.optimizer} lr {options.lr:g}, {options.schedule} schedule, batch "
          f"{options.batch_size}, {options.epochs} epochs, seed {options.seed}"
          + (f"; resuming from {resume}" if resume else ""), flush=True)
    os.makedirs(options.out, exist_ok=True)
    if not resume and main_rank:
        with open(os.path.join(options.out, CONFIG), "w") as handle:
            json.dump(_configuration(options), handle, indent=1)
    paths = {name: os.path.join(options.out, name) for name in (CHECKPOINT, WEIGHTS, HISTORY, CURVES)}
    early_stopping = None if options.patience is None else EarlyStopping(patience=options.patience)
    history = fit(trained, nn.CrossEntropyLoss(), optimizer, train_loader, val_loader, epochs=options.epochs,
                  scheduler=scheduler, scheduler_interval=interval, clip_grad_norm=options.clip,
                  early_stopping=early_stopping, checkpoint_path=paths[CHECKPOINT] if main_rank else None,
                  resume=resume, progress=not options.no_progress and main_rank, verbose=main_rank,
                  history_path=paths[HISTORY] if main_rank else None, compile=options.compile)
    result = evaluate(model, nn.CrossEntropyLoss(), test_loader)
    if not main_rank:
        return result["accuracy"]
    correct = round(result["accuracy"] * len(test[1]))
    print(f"test accuracy {result['accuracy']:.2%} ({correct:,}/{len(test[1]):,}), test loss {result['loss']:.4f}",
          flush=True)
    nbprop.save(model.state_dict(), paths[WEIGHTS])
    written = [paths[CHECKPOINT], paths[WEIGHTS], paths[HISTORY]]
    if len(history):
        try:
            from nbprop import plot

            plot.history(paths[HISTORY], paths[CURVES], title=f"{options.model} on {options.dataset}: test accuracy "
                                                               f"{result['accuracy']:.2%}")
            written.append(paths[CURVES])
        except ImportError as error:
            print(f"nbprop-train: no plot: {error}", file=sys.stderr)
    if history.gradient_health:
        print(f"gradient health: {len(history.gradient_health)} flag(s), see above and {paths[HISTORY]}")
    compiled = " (including compilation)" if notice is not None and notice.count else ""
    print(f"wrote {', '.join(written)} in {time.perf_counter() - start:.1f} s{compiled}", flush=True)
    return result["accuracy"]


def main(argv=None):
    """The console script: parse `argv` (default sys.argv[1:]), train; returns the exit status."""
    options = parser().parse_args(argv)
    notice = _CompileNotice()
    try:
        with event.install_listener("numba:compile", notice):
            run(options, notice)
    except _Error as error:
        print(f"nbprop-train: error: {error}", file=sys.stderr)
        distributed = sys.modules.get("nbprop.distributed")  # under MPI: end every rank, none waits for this one
        return 2 if distributed is None else distributed.end_job(2)
    except KeyboardInterrupt:
        print(f"\nnbprop-train: interrupted; continue with --resume (the checkpoint of the last whole epoch is in "
              f"{options.out})", file=sys.stderr)
        return 130
    return 0
