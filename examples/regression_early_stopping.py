"""Regress disease progression on scikit-learn's bundled diabetes data with an MLP, stopping early when the
validation loss stops improving (best weights restored); prints the test error it reached."""

import sys

import numpy as np
from sklearn.datasets import load_diabetes

import nbprop
from nbprop import nn, optim
from nbprop.data import DataLoader, StandardScaler, TensorDataset, train_test_split
from nbprop.train import EarlyStopping, evaluate, fit


def main(max_epochs=500, patience=20, seed=0, progress=True):
    nbprop.manual_seed(seed)
    features, targets = load_diabetes(return_X_y=True)  # 442 patients, 10 features; the target is a number
    features = nbprop.tensor(features.astype(np.float32))
    targets = nbprop.tensor(targets.astype(np.float32)).reshape(-1, 1)
    train_x, test_x, train_y, test_y = train_test_split(features, targets, test_size=0.2, random_state=seed)
    train_x, val_x, train_y, val_y = train_test_split(train_x, train_y, test_size=0.2, random_state=seed + 1)
    # Scaled with the training split's statistics only; the targets too, so that the loss is near 1 at the start.
    feature_scaler, target_scaler = StandardScaler().fit(train_x), StandardScaler().fit(train_y)
    train_x, val_x, test_x = (feature_scaler.transform(data) for data in (train_x, val_x, test_x))
    train_y, val_y, test_y = (target_scaler.transform(data) for data in (train_y, val_y, test_y))

    shuffle = nbprop.Generator().manual_seed(seed)
    train_loader = DataLoader(TensorDataset(train_x, train_y), batch_size=32, shuffle=True, generator=shuffle)
    val_loader = DataLoader(TensorDataset(val_x, val_y), batch_size=256)
    model = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Dropout(0.1), nn.Linear(64, 64), nn.ReLU(),
                          nn.Linear(64, 1))
    optimizer = optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
    stopping = EarlyStopping(patience=patience)
    history = fit(model, nn.MSELoss(), optimizer, train_loader, val_loader, epochs=max_epochs,
                  early_stopping=stopping, progress=progress, verbose=False)

    test_mse = evaluate(model, nn.MSELoss(), DataLoader(TensorDataset(test_x, test_y), batch_size=256))["loss"]
    # Back in the target's own units: its scale is the training split's standard deviation.
    rmse = (test_mse ** 0.5) * target_scaler.scale_.item()
    r_squared = 1 - test_mse / ((test_y - test_y.mean()) ** 2).mean().item()
    stopped = f"stopped early after epoch {len(history)}" if history.stopped_early else f"ran {len(history)} epochs"
    print(f"{stopped}; best validation loss {stopping.best:.4f} at epoch {history.best_epoch} (weights restored)")
    print(f"test RMSE {rmse:.1f} (target standard deviation {target_scaler.scale_.item():.1f}), R^2 {r_squared:.3f}")
    return history, rmse, r_squared


if __name__ == "__main__":
    main(progress=sys.stderr.isatty())
