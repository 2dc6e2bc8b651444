"""Tiered dataset health checks: the original design's "Dataset Health Checks" and "State Coverage
Check".

The dataset this fixes had 87% of its state clusters with a single action (13 of 103 clusters had
any counterfactual data): the deterministic heuristic (called Kasmina in the original design)
always does the same thing in the same state, so offline RL cannot learn when to act differently.
These checks measure that and the other failure modes the original design lists, on plain arrays
(:class:`~esper_agents.generation.health.inputs.HealthInput`), so they do not depend on how a pack is stored.

Checks, in the original design's order (the table
:data:`~esper_agents.generation.health.checks.CHECKS`). A check *fails* when its figure is on the
wrong side of its threshold; a failed ``error`` blocks generation, a failed ``warning`` is logged
for review.

=======  ==========================  =====================================================  ======
tier     name                        figure                                                 passes
=======  ==========================  =====================================================  ======
error    single_action_clusters      fraction of occupied state clusters that are           <= 0.5
                                     single-action
error    min_op_share                smallest share of any op in all transitions            >= 0.02
error    cluster_op_entropy          mean normalised op entropy over state clusters         >= 0.3
error    state_cluster_coverage      1 - (clusters with < 5 states) / n_clusters            >= 0.3
warning  cluster_op_entropy          same figure as above                                   >= 0.5
warning  policy_diversity            number of distinct behavior policies                   >= 5
warning  return_spread               std / |mean| of episode returns                        >= 0.10
warning  min_op_share                same figure as above                                   >= 0.05
warning  late_state_coverage         clusters visited late / clusters visited early         >= 0.30
warning  state_cluster_coverage      same figure as above                                   >= 0.5
warning  reward_variance             variance of per-step rewards                           >= 1.0
warning  episode_length_variety      number of distinct episode lengths                     >= 2
=======  ==========================  =====================================================  ======

Definitions (the choices the original design leaves open):

* **Op.** The "action" of the action checks is the compact action's op (WAIT, GERMINATE, ADVANCE,
  SET_ALPHA_TARGET, PRUNE, FOSSILIZE: the prefix of its description), not its index. The compact
  set has ~55 indices (one per slot x blueprint x target...), so per-index shares would fail the
  2% rule on any dataset; the original analysis used the 4 classic actions, and the op is their
  analogue (CULL = PRUNE).
* **State clusters.** Observations are standardised per feature (zero mean, unit std over the
  data; constant features left at 0) and clustered by k-means (scikit-learn ``KMeans``, k-means++
  init, ``n_init=1``, ``random_state=0``) with ``n_clusters = min(100, N // 10)`` (at least 1)
  unless given. Above ``fit_sample`` (10,000) transitions the centroids are fit on a fixed random
  subsample (still ~100 states per centroid) and every transition is then assigned to its nearest
  centroid; this keeps a full check under ~1 s at 50k transitions and changes nothing below that
  size. Same input, same clusters.
* **Occupied cluster.** A cluster with at least 5 states; clusters with fewer count as empty
  (the original design's coverage rule). Coverage = occupied / n_clusters.
* **Single-action cluster.** An occupied cluster in which one op accounts for >= 99% of its
  transitions. Below 100 transitions that means one op only; in larger clusters it tolerates
  under 1% of stray (typically exploratory) actions, too few to learn a counterfactual from.
  The figure is the fraction of occupied clusters that are single-action.
* **Op entropy per state cluster.** For each occupied cluster, the Shannon entropy of its op
  distribution divided by ``log(n_ops)``, where ``n_ops`` is the number of ops in the action set
  (6 for the compact actions), so 1 means all six ops equally often and 0 a single op; a 50/50
  WAIT/GERMINATE cluster scores 0.39. The figure is the mean over occupied clusters weighted by
  their sizes. It is the plug-in estimate, biased low in small clusters (at ~10 states per
  cluster, i.e. under 1,000 transitions, a uniform op mix scores ~0.85 rather than 1).
* **Late-episode coverage.** Early states have ``timestep < max_epochs / 3``, late ones
  ``timestep >= 2 * max_epochs / 3``. Figure: the number of distinct clusters that late states
  visit divided by the number that early states visit (0 when no episode gets late).
* **Return spread.** Population std of episode returns over the absolute mean (inf if the mean is 0
  and the std is not).
* **Reward variance.** Population variance of the per-step rewards as stored. The original
  design's threshold of 1.0 was set for rewards on the percent accuracy scale; Esper's accuracies are
  fractions, so shaped per-step rewards are ~100x smaller (variances ~0.1 on SynthCIFAR) and
  this warning fires on most data (``HealthConfig.reward_variance_min`` rescales it).

``CheckResult.cells`` names what to generate more of, for adaptive allocation: for the op-share
checks, the ops below the threshold; for the other data checks, the (policy, config) cells whose
own data fails the same figure (the share of their transitions in single-action clusters above
0.5, their clusters' mean entropy, their return spread, late coverage or reward variance); for the
coverage check, the cells whose states lie in the near-empty clusters (rare regions that more
of their episodes would fill). Worst first. Policy diversity and episode-length variety name none.

Checks run after each batch of episodes (the orchestrator calls
:func:`~esper_agents.generation.health.checks.run_health_checks` on the data so far), after
generation, and before training (``esper health --pack DIR``).

Modules, one job each (nothing is imported here, so importing one stays light):

* :mod:`~esper_agents.generation.health.inputs`: :class:`HealthInput` (the arrays the checks read)
  and :func:`load_health_input` (a pack as one);
* :mod:`~esper_agents.generation.health.config`: :class:`HealthConfig` (thresholds, clustering);
* :mod:`~esper_agents.generation.health.clusters`: the k-means state clusters;
* :mod:`~esper_agents.generation.health.checks`: the table of checks and :func:`run_health_checks`;
* :mod:`~esper_agents.generation.health.results`: :class:`CheckResult` and :class:`HealthReport`;
* :mod:`~esper_agents.generation.health.report`: the text table, ``health.md``/``health.json`` and
  ``esper health --pack DIR`` (:func:`check_pack`);
* :mod:`~esper_agents.generation.health.plots`: the report's PNG plots.
"""
