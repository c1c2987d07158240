using LLGBM.Tasks;

namespace LLGBM.Evaluation;

/// <summary>Settings of <see cref="TaskEvaluator"/>; the defaults evaluate every test example with the bare prompt.</summary>
public sealed record EvaluationOptions
{
    /// <summary>How examples become prompts (<see cref="PromptFormat.Bare"/> or <see cref="PromptFormat.WithInstruction"/>).</summary>
    public PromptFormat Format { get; init; } = PromptFormat.Bare;

    /// <summary>Sequences per forward pass: prompts per decoding batch, or (prompt, choice) pairs per scoring batch.</summary>
    public int BatchSize { get; init; } = 8;

    /// <summary>Evaluate only the first N test examples; null evaluates all.</summary>
    public int? Limit { get; init; }

    /// <summary>
    /// Most tokens generated per example; null takes the token count of the longest reference continuation of the
    /// evaluated examples plus <see cref="MaxNewTokensMargin"/>.
    /// </summary>
    public int? MaxNewTokens { get; init; }

    /// <summary>Tokens added to the longest reference answer when <see cref="MaxNewTokens"/> is null.</summary>
    public int MaxNewTokensMargin { get; init; } = 8;

    /// <summary>
    /// Stop decoding at the newline token (when the tokenizer encodes "\n" as one token); null stops there exactly
    /// when the task's answers are read from the first line (<see cref="AnswerExtraction.FirstLine"/>).
    /// </summary>
    public bool? StopAtNewline { get; init; }

    /// <summary>More tokens that end a generated answer, besides the end-of-text token.</summary>
    public IReadOnlyCollection<int> ExtraStopTokens { get; init; } = [];

    /// <summary>How multiple-choice log-likelihoods are normalised before the argmax.</summary>
    public LengthNormalization Normalization { get; init; } = LengthNormalization.None;

    /// <summary>Where multiple-choice batches are padded (the scores do not depend on it).</summary>
    public PaddingSide Padding { get; init; } = PaddingSide.Right;

    /// <summary>Keep every example's prediction in <see cref="TaskEvaluation.Predictions"/>.</summary>
    public bool KeepPredictions { get; init; }

    /// <summary>Called after each batch with the number of examples done and the total.</summary>
    public Action<int, int>? Progress { get; init; }

    /// <summary>Checks the settings; returns them.</summary>
    public EvaluationOptions Validate()
    {
        if (BatchSize <= 0)
            throw new LlgbmException($"Evaluation: the batch size must be positive, found {BatchSize}.");
        if (Limit is < 0)
            throw new LlgbmException($"Evaluation: the example limit must not be negative, found {Limit}.");
        if (MaxNewTokens is < 0 || MaxNewTokensMargin < 0)
            throw new LlgbmException($"Evaluation: the new-token limit and margin must not be negative, found {MaxNewTokens} and {MaxNewTokensMargin}.");
        return this;
    }
}
