namespace LLGBM.Tasks;

/// <summary>
/// One example: a prompt and its answer; for multiple choice also the choices, with <see cref="Answer"/> the letter
/// of the right one ("A", "B", …). One line of <c>train.jsonl</c> / <c>test.jsonl</c>.
/// </summary>
public sealed record TaskExample
{
    /// <summary>The input shown to the model.</summary>
    public required string Prompt { get; init; }

    /// <summary>The reference answer (generation) or the letter of the right choice (multiple choice).</summary>
    public required string Answer { get; init; }

    /// <summary>The choices of a multiple-choice example, in order A, B, …; null for generation.</summary>
    public IReadOnlyList<string>? Choices { get; init; }

    /// <summary>The index of the right choice (0 for "A"), or null when this is not a multiple-choice example.</summary>
    public int? AnswerIndex => Choices is null || Answer.Length != 1 ? null : Answer[0] - 'A';
}
