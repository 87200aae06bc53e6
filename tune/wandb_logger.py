"""Ray's ``WandbLoggerCallback`` with a logging actor that waits for W&B's service to write the trial's run.

Ray's actor logs a trial's results, calls ``wandb.finish()`` and is killed with its child processes as soon as that
returns. W&B's service writes the run's file only when it closes the run's stream, a moment after the finish, so on
a loaded machine an offline trial run was left as an empty file (a 7-byte .wandb file: the header alone).
``wandb.teardown()`` after the finish shuts the service down and waits for it. Ray's callback makes its actor from
the class attribute ``_logger_actor_cls``. A module of its own because importing Ray's integration imports wandb.
"""

from ray.air.integrations.wandb import WandbLoggerCallback, _WandbLoggingActor


class TrialRunLogger(_WandbLoggingActor):
    """Ray's W&B logging actor, which shuts W&B's service down when the trial's run is finished."""

    def run(self):
        try:
            super().run()
        finally:
            self._wandb.teardown()


class TrialWandbCallback(WandbLoggerCallback):
    """Ray's W&B logger callback with :class:`TrialRunLogger` as its actor."""

    _logger_actor_cls = TrialRunLogger
