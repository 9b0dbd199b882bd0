"""Classify scikit-learn's 8x8 handwritten digits with an MLP trained by nbprop.train.fit; prints the test
accuracy it reached (about 97%) and writes a PNG of its curves."""

import os
import sys
import tempfile

import nbprop
from nbprop import nn, optim
from nbprop.data import DataLoader, TensorDataset, datasets, train_test_split
from nbprop.train import evaluate, fit


def main(epochs=20, seed=0, out=None, progress=True):
    nbprop.manual_seed(seed)
    features, labels = datasets.load_digits()  # (1797, 64) pixel counts 0..16, labels 0..9
    features = features / 16.0
    train_x, test_x, train_y, test_y = train_test_split(features, labels, test_size=0.2, stratify=labels,
                                                        random_state=seed)
    train_x, val_x, train_y, val_y = train_test_split(train_x, train_y, test_size=0.1, stratify=train_y,
                                                      random_state=seed + 1)
    shuffle = nbprop.Generator().manual_seed(seed)
    train_loader = DataLoader(TensorDataset(train_x, train_y), batch_size=64, shuffle=True, generator=shuffle)
    val_loader = DataLoader(TensorDataset(val_x, val_y), batch_size=512)

    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10))
    optimizer = optim.Adam(model.parameters(), lr=2e-3)
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    out = out or tempfile.mkdtemp(prefix="digits_mlp.")
    history = fit(model, nn.CrossEntropyLoss(), optimizer, train_loader, val_loader, epochs=epochs,
                  scheduler=scheduler, history_path=os.path.join(out, "history.json"), progress=progress)

    test = evaluate(model, nn.CrossEntropyLoss(), DataLoader(TensorDataset(test_x, test_y), batch_size=512))
    print(f"test accuracy {test['accuracy']:.2%} after {len(history)} epochs (test loss {test['loss']:.4f})")
    try:
        from nbprop import plot

        print(f"curves: {plot.history(os.path.join(out, 'history.json'), os.path.join(out, 'curves.png'))}")
    except ImportError as error:  # matplotlib is the plot extra
        print(f"no curves: {error}")
    return test["accuracy"], history


if __name__ == "__main__":
    main(progress=sys.stderr.isatty())
