using System.Globalization;
using LLGBM.Experiments;

namespace LLGBM.Experiments;

/// <summary>
/// The runs tree: where the pipeline's stages, the commands' defaults and the paper scripts find every result under
/// one root (<c>runs/</c> by default). Nothing else spells a run-tree path.
/// <code>
/// ROOT/suite                          the synthetic task suite (suite.json and one folder per task)
/// ROOT/base-tiny                      the base model (Hugging Face layout; eval.json its evaluation)
/// ROOT/teachers                       the teacher pool
/// ROOT/deltas                         the teachers' delta cache
/// ROOT/encodings                      cached condition encodings
/// ROOT/configs                        the generator configs the pipeline ran, with its overrides
/// ROOT/generators/RUN                 one generator run; ROOT/generators/low-data/RUN the low-data runs
/// ROOT/retrieval/kK/TASK.json         retrieval and merging for a held-out task
/// ROOT/mixtures                       task mixtures (tasks/, teachers/, one MIXTURE.json each)
/// ROOT/robustness/robustness.json     robustness to prompt rewrites
/// ROOT/transfer                       cross-backbone transfer (base-b, teachers-b, deltas-b, runs/, results)
/// ROOT/eval                           studies: delta-quality.json, probe-design.json, generated-deltas.json
/// ROOT/bench                          benchmarks (generator.json)
/// ROOT/logs                           child processes' logs
/// ROOT/paper                          the quick pipeline's tables and figures
/// </code>
/// </summary>
public sealed record RunsLayout(string Root)
{
    /// <summary>The default root, relative to the working directory.</summary>
    public const string DefaultRoot = "runs";

    /// <summary>The root of <c>llgbm pipeline --quick</c>.</summary>
    public const string QuickRoot = "runs-quick";

    /// <summary>The layout under <see cref="DefaultRoot"/>.</summary>
    public static RunsLayout Default { get; } = new(DefaultRoot);

    /// <summary>
    /// The tree a generator run directory lies in, two levels up (<c>ROOT/generators/RUN</c>): where its commands find
    /// the encoding cache by default.
    /// </summary>
    public static RunsLayout OfGeneratorRun(string runDir) =>
        new(Path.GetDirectoryName(Path.GetDirectoryName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(runDir))))!);

    /// <summary>A generator experiment's inputs in this tree: base model, suite, teachers and deltas.</summary>
    public LLGBM.Generators.GeneratorInputs GeneratorInputs => new(Base, Suite, Teachers, Deltas);

    /// <summary>The synthetic task suite.</summary>
    public string Suite => Path.Combine(Root, "suite");

    /// <summary>The suite's manifest (its tasks and splits).</summary>
    public string SuiteManifest => Path.Combine(Suite, LLGBM.Tasks.Synthetic.SyntheticSuiteFiles.ManifestName);

    /// <summary>The base model checkpoint.</summary>
    public string Base => Path.Combine(Root, "base-tiny");

    /// <summary>The base model's evaluation on the suite.</summary>
    public string BaseEvaluation => Path.Combine(Base, "eval.json");

    /// <summary>The teacher pool.</summary>
    public string Teachers => Path.Combine(Root, "teachers");

    /// <summary>The teachers' delta cache.</summary>
    public string Deltas => Path.Combine(Root, "deltas");

    /// <summary>The condition-encoding cache.</summary>
    public string Encodings => Path.Combine(Root, "encodings");

    /// <summary>The generator config <paramref name="name"/> as the pipeline ran it (with its overrides).</summary>
    public string Config(string name) => Path.Combine(Root, "configs", name + ".json");

    /// <summary>The config of the low-data runs made from config <paramref name="name"/>.</summary>
    public string LowDataConfig(string name) => Path.Combine(Root, "configs", "low-data", name + ".json");

    /// <summary>The folder of the generator runs.</summary>
    public string Generators => Path.Combine(Root, "generators");

    /// <summary>The generator run <paramref name="name"/>.</summary>
    public string Generator(string name) => Path.Combine(Generators, name);

    /// <summary>The folder of the low-data generator runs.</summary>
    public string LowData => Path.Combine(Generators, "low-data");

    /// <summary>The retrieval-and-merging results, one folder <c>kK</c> per number of neighbours.</summary>
    public string RetrievalFolder => Path.Combine(Root, "retrieval");

    /// <summary>Retrieval and merging for held-out <paramref name="task"/> with <paramref name="k"/> neighbours.</summary>
    public string Retrieval(int k, string task) =>
        Path.Combine(RetrievalFolder, "k" + k.ToString(CultureInfo.InvariantCulture), task + ".json");

    /// <summary>The task-mixture stage's folder.</summary>
    public string Mixtures => Path.Combine(Root, "mixtures");

    /// <summary>The mixture tasks.</summary>
    public string MixtureTasks => Path.Combine(Mixtures, "tasks");

    /// <summary>The mixture tasks' teachers.</summary>
    public string MixtureTeachers => Path.Combine(Mixtures, "teachers");

    /// <summary>The results of mixture <paramref name="name"/>.</summary>
    public string Mixture(string name) => Path.Combine(Mixtures, name + ".json");

    /// <summary>The robustness results.</summary>
    public string Robustness => Path.Combine(Root, "robustness", "robustness.json");

    /// <summary>The cross-backbone transfer stage's folder.</summary>
    public string Transfer => Path.Combine(Root, "transfer");

    /// <summary>The second backbone of the transfer stage.</summary>
    public string TransferBase => Path.Combine(Transfer, "base-b");

    /// <summary>The second backbone's teachers.</summary>
    public string TransferTeachers => Path.Combine(Transfer, "teachers-b");

    /// <summary>The second backbone's delta cache.</summary>
    public string TransferDeltas => Path.Combine(Transfer, "deltas-b");

    /// <summary>The transfer stage's config <paramref name="name"/>.</summary>
    public string TransferConfig(string name) => Path.Combine(Transfer, "configs", name + ".json");

    /// <summary>The transfer stage's generator run <paramref name="name"/>.</summary>
    public string TransferRun(string name) => Path.Combine(Transfer, "runs", name);

    /// <summary>The transfer results <paramref name="name"/> (<c>meaning</c>, <c>activation</c>).</summary>
    public string TransferResults(string name) => Path.Combine(Transfer, name + ".json");

    /// <summary>The study results <paramref name="name"/> (<c>delta-quality</c>, <c>probe-design</c>, <c>generated-deltas</c>).</summary>
    public string Study(string name) => Path.Combine(Root, "eval", name + ".json");

    /// <summary>The benchmark results <paramref name="name"/> (<c>generator</c>).</summary>
    public string Bench(string name) => Path.Combine(Root, "bench", name + ".json");

    /// <summary>The tables and figures of <c>llgbm pipeline --quick</c> (the full pipeline writes the repository's <c>paper/</c>).</summary>
    public string Paper => Path.Combine(Root, "paper");

    /// <summary>The child processes' logs.</summary>
    public string Logs => Path.Combine(Root, "logs");
}
