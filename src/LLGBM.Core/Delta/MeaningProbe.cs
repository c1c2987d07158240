namespace LLGBM.Delta;

/// <summary>
/// One coordinate of the delta meaning: a prompt and a fixed continuation of it, both text. The coordinate is the
/// change an adapter causes in log p(continuation | prompt) (see <see cref="MeaningDeltaEmbedder"/>).
/// </summary>
/// <param name="Prompt">The text the model reads; not empty.</param>
/// <param name="Continuation">The text whose log-probability after the prompt is measured; not empty.</param>
public sealed record MeaningProbe(string Prompt, string Continuation);
