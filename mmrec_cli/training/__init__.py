"""Training: the one loop (`loop.fit`: early stopping, checkpoints, resume), the stages built on it
(pretrain, finetune, transfer), several processes (`distributed`), and the loading of stage configs
and trained models."""
