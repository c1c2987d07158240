using LLGBM.Algebra;
using LLGBM.Delta;
using LLGBM.Model;
using LLGBM.Tasks;
using static TorchSharp.torch;

namespace LLGBM.Experiments;

/// <summary>What <see cref="ProbeDesignStudy.Run"/> compares.</summary>
/// <param name="Base">The base checkpoint directory (with its tokenizer).</param>
/// <param name="Teachers">The teacher pool directory.</param>
/// <param name="Tasks">The tasks directory: domains, mixtures and the task probes' prompts.</param>
/// <param name="Variants">Comma-separated variant names (<see cref="ProbeDesignStudy.Choose"/>), or null for all.</param>
/// <param name="PerTask">Training prompts per task in the task-probe variant.</param>
/// <param name="ProbeSeed">Seed of the task probes.</param>
/// <param name="CheckpointsPerTask">The last N kept checkpoints of each task, or null for all.</param>
/// <param name="Device">Where the deltas are computed.</param>
public sealed record ProbeDesignSettings(
    string Base, string Teachers, string Tasks, string? Variants, int PerTask, long ProbeSeed, int? CheckpointsPerTask, Device Device);

/// <summary>The quality and cost of one variant.</summary>
/// <param name="Name">The variant's name.</param>
/// <param name="Group">The design question it belongs to.</param>
/// <param name="Description">What it measures.</param>
/// <param name="Probes">Its probe set's name.</param>
/// <param name="ProbeCount">Its number of probes.</param>
/// <param name="ProbeTokens">Tokens over all its probes.</param>
/// <param name="DeltaSpec">Its spec's key.</param>
/// <param name="Dimension">The width of its deltas.</param>
/// <param name="Silhouettes">Silhouette by domain at checkpoint and task level (mixtures left out).</param>
/// <param name="NearestCheckpoint">Leave-one-task-out 1-NN by domain over every kept checkpoint (mixtures left out).</param>
/// <param name="NearestTask">The same over final checkpoints only.</param>
/// <param name="BaseSeconds">Wall time of the base pass (built once per variant).</param>
/// <param name="DeltaSeconds">Wall time of every adapter's delta together.</param>
/// <param name="MillisecondsPerAdapter">The median of the adapters' delta times.</param>
/// <param name="MinMillisecondsPerAdapter">The least of the adapters' delta times (the least disturbed by other work).</param>
public sealed record ProbeDesignVariantResult(
    string Name, string Group, string Description, string Probes, int ProbeCount, int ProbeTokens, string DeltaSpec, long Dimension,
    DeltaQuality.SilhouetteRow[] Silhouettes, DeltaNeighbours.NeighbourCheck NearestCheckpoint,
    DeltaNeighbours.NeighbourCheck NearestTask, double BaseSeconds, double DeltaSeconds, double MillisecondsPerAdapter,
    double MinMillisecondsPerAdapter);

/// <summary>The probe-design study's result (<c>eval/probe-design.json</c>).</summary>
/// <param name="Base">The base checkpoint directory.</param>
/// <param name="Teachers">The teacher pool directory.</param>
/// <param name="Tasks">The tasks directory.</param>
/// <param name="CheckpointsPerTask">The last N kept checkpoints of each task used, or null for all.</param>
/// <param name="Adapters">Adapters embedded (mixtures included).</param>
/// <param name="TaskCount">Tasks with adapters (mixtures included).</param>
/// <param name="Variants">One result per variant, in the order run.</param>
public sealed record ProbeDesignResult(
    string Base, string Teachers, string Tasks, int? CheckpointsPerTask, int Adapters, int TaskCount,
    IReadOnlyList<ProbeDesignVariantResult> Variants);

/// <summary>
/// How the design of the delta activation (probe count, generic or task probes, layers, pooling) changes its quality on
/// a teacher pool: silhouette by domain, leave-one-task-out 1-NN by domain, and cost. Deltas are computed in memory.
/// </summary>
public static class ProbeDesignStudy
{
    /// <summary>Computes every chosen variant's deltas of the pool and evaluates them.</summary>
    public static ProbeDesignResult Run(ProbeDesignSettings s, Action<string>? progress = null)
    {
        var suite = TaskSuite.LoadAll(s.Tasks);
        if (suite.Count == 0)
            throw new LlgbmException($"--tasks {s.Tasks}: no task directories found.");
        var configPath = Path.Combine(s.Base, "config.json");
        if (!File.Exists(configPath))
            throw new LlgbmException($"--base {s.Base}: no config.json.");
        var all = ProbeDesignVariant.Standard(suite, Qwen2Config.Load(configPath).NumHiddenLayers, s.PerTask, s.ProbeSeed);
        var chosen = Choose(all, s.Variants);
        var (adapters, deltas) = PoolDeltaVariants.Compute(
            s.Base, s.Teachers, chosen, s.CheckpointsPerTask, s.Device, line => progress?.Invoke(line));
        var mixtures = DeltaQualityStudy.Mixtures(suite);
        return new ProbeDesignResult(
            s.Base, s.Teachers, s.Tasks, s.CheckpointsPerTask, adapters.Count, adapters.Select(a => a.Checkpoint.Task).Distinct().Count(),
            [.. deltas.Select(d => Evaluate(adapters, d, mixtures))]);
    }

    /// <summary>The variants named in <paramref name="names"/> (comma-separated), in the order given; all when null.</summary>
    /// <exception cref="LlgbmException">A name is not among the variants.</exception>
    public static IReadOnlyList<ProbeDesignVariant> Choose(IReadOnlyList<ProbeDesignVariant> all, string? names)
    {
        if (names is null)
            return all;
        // Layer lists hold commas, so names are matched greedily against the known ones.
        var chosen = new List<ProbeDesignVariant>();
        var rest = names.Trim();
        while (rest.Length > 0)
        {
            var match = all.Where(v => rest == v.Name || rest.StartsWith(v.Name + ",", StringComparison.Ordinal)).MaxBy(v => v.Name.Length)
                ?? throw new LlgbmException(
                    $"--variants: \"{rest.Split(',')[0]}\" is not a variant; expected some of {string.Join(" ", all.Select(v => v.Name))}.");
            if (!chosen.Contains(match))
                chosen.Add(match);
            rest = rest[match.Name.Length..].TrimStart(',').Trim();
        }
        return chosen;
    }

    /// <summary>The quality of one variant's deltas: silhouettes and 1-NN checks, mixtures left out.</summary>
    public static ProbeDesignVariantResult Evaluate(
        IReadOnlyList<PoolAdapter> adapters, VariantDeltas deltas, IReadOnlyList<DeltaQuality.Mixture> mixtures)
    {
        var v = deltas.Variant;
        var points = adapters.Select((a, i) => new DeltaQuality.EmbeddedAdapter(
            a.Checkpoint.Task, a.Checkpoint.Domain, a.Checkpoint.Step, a.Final, deltas.Deltas[i])).ToArray();
        var representation = new DeltaQuality.Representation(v.Name, v.Description, points);
        var mixed = mixtures.Select(m => m.Name).ToHashSet(StringComparer.Ordinal);
        var plain = points.Where(p => !mixed.Contains(p.Task)).ToArray();
        return new ProbeDesignVariantResult(
            v.Name, v.Group, v.Description, v.Probes.Name, v.Probes.Count, deltas.ProbeTokens, v.Spec.Key(), deltas.Dim,
            DeltaQuality.silhouettes([.. mixtures], representation),
            DeltaNeighbours.leaveOneTaskOut(plain), DeltaNeighbours.leaveOneTaskOut([.. plain.Where(p => p.Final)]),
            deltas.BaseSeconds, deltas.DeltaSeconds.Sum(), deltas.DeltaSeconds.Order().ElementAt(deltas.DeltaSeconds.Count / 2) * 1000,
            deltas.DeltaSeconds.Min() * 1000);
    }
}
