using LLGBM.Algebra;
using LLGBM.Delta;
using LLGBM.Tasks;

namespace LLGBM.Experiments;

/// <summary>What <see cref="DeltaQualityStudy.Run"/> evaluates: a teacher pool and how its adapters are embedded.</summary>
/// <param name="Base">The base checkpoint directory (with its tokenizer).</param>
/// <param name="Teachers">The teacher pool directory (with its manifest.json).</param>
/// <param name="Tasks">The tasks directory (the suite): domains, mixtures and training prompts.</param>
/// <param name="Embedding">Probes, delta spec, delta cache, prompt count and device of the embeddings.</param>
public sealed record DeltaQualitySettings(string Base, string Teachers, string Tasks, TeacherEmbeddingSettings Embedding);

/// <summary>The delta-quality study's result (<c>eval/delta-quality.json</c>).</summary>
/// <param name="Base">The base checkpoint directory.</param>
/// <param name="Teachers">The teacher pool directory.</param>
/// <param name="Tasks">The tasks directory.</param>
/// <param name="Probes">The probe set of the delta activations.</param>
/// <param name="DeltaSpec">The delta spec's key.</param>
/// <param name="PromptCount">Training prompts per prompt embedding (at most).</param>
/// <param name="Adapters">Adapters embedded (mixtures included).</param>
/// <param name="DeltasFromCache">Deltas read from the cache.</param>
/// <param name="DeltasComputed">Deltas computed (missing from the cache, or no cache given).</param>
/// <param name="Published">The figures Delta Activations reports, for comparison.</param>
/// <param name="Report">Silhouettes, additivity and the representations.</param>
/// <param name="Pca">The delta activations on their first two principal components (null below three adapters).</param>
public sealed record DeltaQualityResult(
    string Base, string Teachers, string Tasks, string Probes, string DeltaSpec, int PromptCount, int Adapters,
    int DeltasFromCache, int DeltasComputed, IReadOnlyDictionary<string, double> Published, DeltaQuality.Report Report,
    DeltaPca? Pca);

/// <summary>One kept teacher adapter's delta activation on the pool's first two principal components.</summary>
/// <param name="Task">The adapter's task.</param>
/// <param name="Domain">The task's domain.</param>
/// <param name="Step">The training step it was kept at.</param>
/// <param name="Adapter">The adapter directory, relative to the pool's root.</param>
/// <param name="Pc1">Its coordinate on the first component.</param>
/// <param name="Pc2">Its coordinate on the second component.</param>
public sealed record PcaPoint(string Task, string Domain, int Step, string Adapter, double Pc1, double Pc2);

/// <summary>The delta activations of every kept adapter (mixtures included) on their first two principal components.</summary>
/// <param name="Explained">The share of the variance each component explains.</param>
/// <param name="Points">Every adapter's coordinates, in the pool's order.</param>
public sealed record DeltaPca(IReadOnlyList<double> Explained, IReadOnlyList<PcaPoint> Points);

/// <summary>
/// The Delta Activations evaluation of a teacher pool (arXiv 2509.04442): silhouette scores with cosine distance over
/// domain labels for four representations of the adapters, the additivity of mixture tasks, and the deltas' first two
/// principal components.
/// </summary>
public static class DeltaQualityStudy
{
    /// <summary>The silhouette Delta Activations reports for delta activations (average over its settings).</summary>
    public const double PublishedDeltaSilhouette = 0.614;

    /// <summary>The silhouette Delta Activations reports for flattened adapter weights.</summary>
    public const double PublishedWeightSilhouette = -0.043;

    /// <summary>Name of the delta-activation representation.</summary>
    public const string DeltaName = "delta-activation";

    /// <summary>Name of the flattened-A-and-B representation.</summary>
    public const string WeightsName = "lora-weights-ab";

    /// <summary>Name of the flattened-ΔW representation.</summary>
    public const string DeltaWeightName = "lora-delta-w";

    /// <summary>Name of the prompt representation: the base model's mean-pooled hidden state over the task's prompts.</summary>
    public const string PromptsName = "prompts-base-hidden-mean";

    /// <summary>Embeds every kept adapter of the pool and evaluates the four representations.</summary>
    public static DeltaQualityResult Run(DeltaQualitySettings s, Action<string>? progress = null)
    {
        var suite = TaskSuite.LoadAll(s.Tasks);
        var embeddings = TeacherEmbeddings.Compute(s.Base, s.Teachers, suite, s.Embedding, line => progress?.Invoke(line));
        var fromCache = embeddings.Count(e => e.DeltaFromCache);
        return new DeltaQualityResult(
            s.Base, s.Teachers, s.Tasks, s.Embedding.Probes.Name, s.Embedding.Spec.Key(), s.Embedding.PromptCount,
            embeddings.Count, fromCache, embeddings.Count - fromCache,
            new Dictionary<string, double> { [DeltaName] = PublishedDeltaSilhouette, [WeightsName] = PublishedWeightSilhouette },
            Evaluate(embeddings, suite, s.Embedding), Pca(embeddings));
    }

    /// <summary>The four representations of <paramref name="embeddings"/>, named and described.</summary>
    public static DeltaQuality.Representation[] Representations(
        IReadOnlyList<TeacherEmbedding> embeddings, TeacherEmbeddingSettings settings)
    {
        DeltaQuality.Representation Make(string name, string description, Func<TeacherEmbedding, float[]> vector) =>
            new(name, description, [.. embeddings.Select(e => new DeltaQuality.EmbeddedAdapter(
                e.Checkpoint.Task, e.Checkpoint.Domain, e.Checkpoint.Step, e.Final, vector(e)))]);
        return
        [
            Make(DeltaName,
                $"delta activation: mean over the probes ({settings.Probes.Name}) of the adapted minus the base representation ({settings.Spec.Key()})",
                e => e.Delta),
            Make(WeightsName, "raw LoRA weights: A then B of every module (modules in ordinal name order), flattened", e => e.LoraWeights),
            Make(DeltaWeightName, "LoRA update dW = scale * B * A of every module, flattened (invariant to the A/B gauge)", e => e.DeltaWeight),
            Make(PromptsName,
                $"base model's final-norm hidden state mean-pooled over the tokens of up to {settings.PromptCount} training prompts of the task, " +
                $"averaged (one seeded sample per checkpoint)",
                e => e.Prompts),
        ];
    }

    /// <summary>
    /// The delta activations of <paramref name="embeddings"/> on their first two principal components
    /// (<see cref="PrincipalComponents.project"/>); null below three adapters.
    /// </summary>
    public static DeltaPca? Pca(IReadOnlyList<TeacherEmbedding> embeddings)
    {
        if (embeddings.Count < 3)
            return null;
        var projection = PrincipalComponents.project(2, [.. embeddings.Select(e => e.Delta)]);
        double At(double[] row, int c) => c < row.Length ? row[c] : 0.0;
        return new DeltaPca(projection.Explained, [.. embeddings.Select((e, i) => new PcaPoint(
            e.Checkpoint.Task, e.Checkpoint.Domain, e.Checkpoint.Step, e.Checkpoint.Adapter,
            At(projection.Coordinates[i], 0), At(projection.Coordinates[i], 1)))]);
    }

    /// <summary>The mixtures among <paramref name="tasks"/>: every task with components.</summary>
    public static DeltaQuality.Mixture[] Mixtures(IReadOnlyList<TaskData> tasks) =>
        [.. tasks.Where(t => t.Spec.Components.Count > 0).Select(t => new DeltaQuality.Mixture(t.Spec.Name, [.. t.Spec.Components]))];

    /// <summary>The report over the four representations of <paramref name="embeddings"/>.</summary>
    public static DeltaQuality.Report Evaluate(
        IReadOnlyList<TeacherEmbedding> embeddings, IReadOnlyList<TaskData> tasks, TeacherEmbeddingSettings settings) =>
        DeltaQuality.report(Mixtures(tasks), Representations(embeddings, settings));
}
