"""The engine: the parts of one experiment, one concern a file, wired by `iovsim.experiment`.

build        the parts from a config (scenario, SUMO session, RSUs, channel, model, tasks, executor, strategy)
fleet        enrolment of federated vehicles: task, device tier, data shard
world        one SUMO step through the channel, with the handover and dwell bookkeeping
observe      the RoundState a strategy plans from; the one place that talks to the cost model
plan         a strategy's Plan checked and turned into transfer jobs (bits, compute time, bandwidth)
transfer     the round's download / compute / upload as a pure function of a per-step link view
split_transfer  split training's per-step protocol inside the transfer (edge servers, migration)
learning     local training of the delivered updates and evaluation of the global adapters
aggregation  hierarchical aggregation: RSU per task, then cloud
feedback     the RoundFeedback a strategy learns from
logs         the run folder's CSV logs
rundir       checkpoints, restore, summary, resolved config
gui          sumo-gui overlay hooks (only with `iovsim gui`)
"""
