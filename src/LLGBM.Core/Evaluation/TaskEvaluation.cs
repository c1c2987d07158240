using System.Text.Json;
using System.Text.Json.Serialization;

namespace LLGBM.Evaluation;

/// <summary>
/// The result of evaluating one model (with or without an adapter) on one task in one prompt format. Serialises to
/// JSON with snake_case names: <c>{"task", "domain", "model", "adapter", "format", "metric", "accuracy", "correct", "n"}</c>,
/// plus <c>"predictions"</c> when they were kept.
/// </summary>
public sealed record TaskEvaluation
{
    /// <summary>The task's name.</summary>
    public required string Task { get; init; }

    /// <summary>The task's domain.</summary>
    public required string Domain { get; init; }

    /// <summary>The evaluated model's name.</summary>
    public required string Model { get; init; }

    /// <summary>The adapter applied to the model; null for the base model.</summary>
    public string? Adapter { get; init; }

    /// <summary>The prompt format: "bare" or "instructed" (see <see cref="PromptFormatNames"/>).</summary>
    public required string Format { get; init; }

    /// <summary>The metric: "exact_match" (generation) or "choice_accuracy" (multiple choice).</summary>
    public required string Metric { get; init; }

    /// <summary>The fraction of examples answered correctly (0 when there were none).</summary>
    public required double Accuracy { get; init; }

    /// <summary>The number of examples answered correctly.</summary>
    public required int Correct { get; init; }

    /// <summary>The number of examples evaluated.</summary>
    public required int N { get; init; }

    /// <summary>Every example's prediction, when asked for (<see cref="EvaluationOptions.KeepPredictions"/>); else null.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<ExamplePrediction>? Predictions { get; init; }

    /// <summary>The JSON settings of results: snake_case names, indented.</summary>
    public static JsonSerializerOptions JsonOptions => LlgbmJson.Options;

    /// <summary>This result as a JSON object.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    /// <summary>A result from its JSON object.</summary>
    public static TaskEvaluation FromJson(string json) =>
        JsonSerializer.Deserialize<TaskEvaluation>(json, JsonOptions) ?? throw new LlgbmException("A task evaluation's JSON is null.");
}
