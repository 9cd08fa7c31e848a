"""The path of one job through the worker, a module per step:

  validate.py  the job's files checked against its method and base model: queued, or failed
  claim.py     a queued job's lease taken: running (or failed, out of attempts)
  stage.py     the job's work directory: its inputs, and the TrainingSpec that describes the run
  run.py       run_job: claim, stage, the trainer under a watch, finish
  progress.py  each line the trainer writes, recorded on the job as it comes
  outcome.py   what becomes of the job once its trainer exits: a pure function of the two
  finish.py    that outcome carried out on the job row
  publish.py   the trained model and its epoch checkpoints stored as the job's artifacts

Each step reads the job row first and acts only if the row says the step is due, so a message
delivered twice does nothing the second time. Training holds a lease on the row (worker/leases.py)
that a watcher renews every few seconds; the same watcher sees the user's cancel and pause in the
row and stops the trainer. Progress is committed in short transactions, so the API shows it live.
"""
