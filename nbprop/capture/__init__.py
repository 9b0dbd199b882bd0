"""Whole-step capture and replay: `nbprop.compile` records a training step's kernel calls once and replays them."""
