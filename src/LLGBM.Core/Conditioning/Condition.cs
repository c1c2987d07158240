using LLGBM.Tasks;
using static TorchSharp.torch;

namespace LLGBM.Conditioning;

/// <summary>
/// What the generator is conditioned on: a prompt batch of one task, K texts (prompts, or prompts with their answers)
/// and their encodings [K, D], one row per text in the batch's order. Owns the encodings.
/// </summary>
public sealed class Condition : IDisposable
{
    /// <summary>A condition of <paramref name="batch"/> whose texts are <paramref name="texts"/>, encoded as <paramref name="encodings"/> [K, D].</summary>
    /// <exception cref="LlgbmException">The shapes disagree.</exception>
    public Condition(PromptBatch batch, IReadOnlyList<string> texts, Tensor encodings)
    {
        if (texts.Count != batch.Items.Count)
            throw new LlgbmException($"Condition of task {batch.Task}: {texts.Count} texts for a batch of {batch.Items.Count} examples.");
        if (encodings.dim() != 2 || encodings.shape[0] != texts.Count)
            throw new LlgbmException(
                $"Condition of task {batch.Task}: encodings of shape [{string.Join(", ", encodings.shape)}] for {texts.Count} texts; " +
                $"expected [{texts.Count}, D].");
        Batch = batch;
        Texts = texts;
        Encodings = encodings;
    }

    /// <summary>The prompt batch (task, seed, mode, the examples drawn).</summary>
    public PromptBatch Batch { get; }

    /// <summary>The texts encoded, one per example (see <see cref="ConditionBuilder.TextOf"/>).</summary>
    public IReadOnlyList<string> Texts { get; }

    /// <summary>The encodings [K, D], float32, no gradient.</summary>
    public Tensor Encodings { get; }

    /// <summary>The task's name.</summary>
    public string Task => Batch.Task;

    /// <summary>The number of examples K.</summary>
    public int K => Texts.Count;

    /// <inheritdoc/>
    public void Dispose() => Encodings.Dispose();
}
