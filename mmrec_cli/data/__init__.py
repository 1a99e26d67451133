"""Interaction data: the dataset artifact and its splits, readers of interaction and item files,
`prepare`, and the batches training and evaluation are built from."""
