"""What every agent of this package shares, whatever algorithm or library trains it.

Offline agents (d3rlpy, :mod:`esper_agents.offline`) and online agents alike act on masked
observations, log the same episode record and are evaluated in the env the same way, so that
code lives here, one concern per module (as sb3-contrib's ``common/maskable`` and
``common/recurrent``):

* :mod:`~esper_agents.common.masks`: the mask rides in the observation, ``concat(features,
  mask)``; :class:`MaskInObservation` does it in the env, :func:`with_mask` / :func:`strip_mask`
  on logged arrays.
* :mod:`~esper_agents.common.episodes`: :class:`LoggedEpisode`, one logged episode (features and
  exact masks of its ``T + 1`` states, ``T`` actions and rewards).
* :mod:`~esper_agents.common.agents`: the :class:`Agent` interface (``reset(seed)``,
  ``act(obs, info)``) and the agents several callers share (:func:`behavior_agent`,
  :class:`RandomAgent`, batched predictors through :func:`as_agent`).
* :mod:`~esper_agents.common.rollout`: :func:`run_episode`, the one episode loop (an
  :class:`Episode` out, an ``on_step`` hook), and :func:`rollout` of logged episodes.
* :mod:`~esper_agents.common.io`: atomic writes, canonical JSON, resumable JSONL.
* :mod:`~esper_agents.common.evaluation`: :func:`make_eval_env` and :func:`evaluate_in_env`.
* :mod:`~esper_agents.common.stats`: :func:`mean_ci`, a mean with its 95% t-interval.

Nothing here imports a learning library (d3rlpy, torch, stable-baselines3) or
:mod:`esper_agents.offline`; a test checks it.
"""

from esper_agents.common.agents import Agent, RandomAgent, as_agent, behavior_agent
from esper_agents.common.episodes import LoggedEpisode
from esper_agents.common.evaluation import (
    action_mix,
    action_names,
    evaluate_in_env,
    make_eval_env,
    summarize_episodes,
)
from esper_agents.common.masks import MaskInObservation, strip_mask, with_mask
from esper_agents.common.rollout import Episode, Step, logged_episode, rollout, run_episode
from esper_agents.common.stats import mean_ci, t_quantile_975

__all__ = [
    "Agent",
    "Episode",
    "LoggedEpisode",
    "MaskInObservation",
    "RandomAgent",
    "Step",
    "action_mix",
    "action_names",
    "as_agent",
    "behavior_agent",
    "evaluate_in_env",
    "logged_episode",
    "make_eval_env",
    "mean_ci",
    "rollout",
    "run_episode",
    "strip_mask",
    "summarize_episodes",
    "t_quantile_975",
    "with_mask",
]
