"""The multi-process runtime: ``robustfl launch`` runs a config over torch.distributed ranks.

Rank 0 is the server (:class:`robustfl.distributed.server.DistributedServer`), ranks ``1..P-1`` the
workers (:class:`robustfl.distributed.worker.Worker`), each computing a share of the clients
(:mod:`robustfl.distributed.assignment`) with the simulator's executor and client step; frames are
point-to-point (:mod:`robustfl.distributed.transport`) and carry the compressors' wire bytes in a small
record format of our own (:mod:`robustfl.distributed.wire`). docs/distributed.md has the protocol,
the fault model and the measurements. (Nothing is imported here: torchrun's supervisor process starts
``python -m robustfl.distributed`` and stays light.)
"""
