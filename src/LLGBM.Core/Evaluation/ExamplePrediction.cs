using System.Text.Json.Serialization;

namespace LLGBM.Evaluation;

/// <summary>What the model answered on one example.</summary>
public sealed record ExamplePrediction
{
    /// <summary>The example's position among the task's test examples.</summary>
    public required int Index { get; init; }

    /// <summary>The extracted answer (generation) or the picked choice's letter (multiple choice); null when nothing could be extracted.</summary>
    public string? Prediction { get; init; }

    /// <summary>The reference, normalised like the prediction (the choice letter for multiple choice).</summary>
    public string? Reference { get; init; }

    /// <summary>Whether the prediction matches the reference.</summary>
    public required bool Correct { get; init; }

    /// <summary>The generated text after the prompt, its leading space removed (generation only).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Completion { get; init; }

    /// <summary>The (normalised) log-likelihood of each choice, in order A, B, … (multiple choice only).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<double>? ChoiceScores { get; init; }
}
