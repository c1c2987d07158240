using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using LLGBM.Tasks.Synthetic;

namespace LLGBM.Pretraining;

/// <summary>
/// Everything that determines the embedded base model: the architecture, the pretraining settings, the synthetic
/// suite it learns from and the versions of both definitions. Its <see cref="Hash"/> keys the cache: a checkpoint is
/// reused only when it was produced by the same recipe.
/// </summary>
public sealed record BaseModelRecipe
{
    /// <summary>Version of the pretraining procedure; raise it when the procedure changes.</summary>
    public const int PretrainerVersion = 1;

    /// <summary>The preset name the architecture came from (informational).</summary>
    public required string Preset { get; init; }

    /// <summary>The pretraining settings (their <see cref="BasePretrainingSettings.Config"/> is the architecture).</summary>
    public required BasePretrainingSettings Training { get; init; }

    /// <summary>The synthetic suite's settings.</summary>
    public required SyntheticSuiteSettings Suite { get; init; }

    /// <summary>The recipe as JSON (the device is left out: it does not change what is learned).</summary>
    public JsonObject ToJson() => new()
    {
        ["preset"] = Preset,
        ["pretrainer_version"] = PretrainerVersion,
        ["suite_version"] = SyntheticSuite.Version,
        ["config"] = Training.Config.ToJson(),
        ["steps"] = Training.Steps,
        ["batch_size"] = Training.BatchSize,
        ["learning_rate"] = Training.LearningRate,
        ["warmup_steps"] = Training.WarmupSteps,
        ["weight_decay"] = Training.WeightDecay,
        ["clip_norm"] = Training.ClipNorm,
        ["seed"] = Training.Seed,
        ["suite"] = new JsonObject
        {
            ["seed"] = Suite.Seed,
            ["train_count"] = Suite.TrainCount,
            ["test_count"] = Suite.TestCount,
        },
        ["tokenizer"] = "byte-level",
    };

    /// <summary>SHA-256 (hex) of the recipe's JSON.</summary>
    public string Hash() => Convert.ToHexStringLower(
        SHA256.HashData(Encoding.UTF8.GetBytes(ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = false }))));
}
