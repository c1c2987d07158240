using TorchSharp;
using static TorchSharp.torch;

namespace LLGBM.Training;

/// <summary>
/// A batch of (prompt, completion) token sequences for completion-only language-model training: right-padded ids
/// [B, T], the padding mask [B, T], and labels [B, T] holding, at position t, the token at t + 1 when that token is
/// part of the completion and −100 (ignored) elsewhere. Owns its tensors.
/// </summary>
public sealed class CompletionBatch : IDisposable
{
    /// <summary>The label value cross-entropy ignores.</summary>
    public const long Ignore = -100;

    /// <summary>Token ids [B, T] (int64).</summary>
    public required Tensor Ids { get; init; }

    /// <summary>1 for real tokens, 0 for padding [B, T] (int64).</summary>
    public required Tensor Mask { get; init; }

    /// <summary>Next-token labels [B, T] (int64), <see cref="Ignore"/> outside completions.</summary>
    public required Tensor Labels { get; init; }

    /// <summary>Number of completion tokens (the positions the loss averages over).</summary>
    public required long CompletionTokens { get; init; }

    /// <summary>Builds the batch; the completion should end with the end-of-text id so that models learn to stop.</summary>
    public static CompletionBatch Create(IReadOnlyList<(IReadOnlyList<int> Prompt, IReadOnlyList<int> Completion)> examples, int padId, Device? device = null)
    {
        if (examples.Count == 0)
            throw new LlgbmException("A completion batch needs at least one example.");
        var length = examples.Max(e => e.Prompt.Count + e.Completion.Count);
        var batch = examples.Count;
        var ids = new long[batch * length];
        var mask = new long[batch * length];
        var labels = new long[batch * length];
        Array.Fill(ids, padId);
        Array.Fill(labels, Ignore);
        long counted = 0;
        for (var b = 0; b < batch; b++)
        {
            var (prompt, completion) = examples[b];
            if (prompt.Count == 0 || completion.Count == 0)
                throw new LlgbmException($"Completion batch example {b}: prompt and completion must both be non-empty.");
            var row = b * length;
            for (var t = 0; t < prompt.Count; t++)
                ids[row + t] = prompt[t];
            for (var t = 0; t < completion.Count; t++)
            {
                ids[row + prompt.Count + t] = completion[t];
                // the token at position p + t is predicted from position p + t − 1
                labels[row + prompt.Count + t - 1] = completion[t];
                counted++;
            }
            for (var t = 0; t < prompt.Count + completion.Count; t++)
                mask[row + t] = 1;
        }
        long[] shape = [batch, length];
        return new CompletionBatch
        {
            Ids = tensor(ids, shape, device: device),
            Mask = tensor(mask, shape, device: device),
            Labels = tensor(labels, shape, device: device),
            CompletionTokens = counted,
        };
    }

    /// <summary>Mean cross-entropy of <paramref name="logits"/> [B, T, V] over the completion tokens.</summary>
    public Tensor Loss(Tensor logits) =>
        nn.functional.cross_entropy(logits.reshape(-1, logits.shape[^1]).to_type(ScalarType.Float32), Labels.reshape(-1), ignore_index: Ignore);

    /// <summary>
    /// Mean cross-entropy over the completion tokens of each of <paramref name="groups"/> consecutive, equal groups of
    /// rows, [groups]: group g is what <see cref="Loss"/> gives for its rows alone (0 for a group without completion
    /// tokens).
    /// </summary>
    public Tensor GroupLosses(Tensor logits, int groups)
    {
        if (groups <= 0 || logits.shape[0] % groups != 0)
            throw new LlgbmException($"Completion batch: {logits.shape[0]} rows cannot be split into {groups} equal groups.");
        using var scope = NewDisposeScope();
        var tokenLosses = nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[^1]).to_type(ScalarType.Float32), Labels.reshape(-1), ignore_index: Ignore, reduction: nn.Reduction.None);
        using var ignore = Ignore.ToScalar();
        using var one = 1.ToScalar();
        var counted = Labels.ne(ignore).to_type(ScalarType.Float32).reshape(groups, -1).sum(1).clamp_min(one);
        return (tokenLosses.reshape(groups, -1).sum(1) / counted).MoveToOuterDisposeScope();
    }

    /// <summary>Mean cross-entropy of each example's completion tokens, [B]: <see cref="GroupLosses"/> of one row each.</summary>
    public Tensor ExampleLosses(Tensor logits) => GroupLosses(logits, (int)logits.shape[0]);

    /// <inheritdoc/>
    public void Dispose()
    {
        Ids.Dispose();
        Mask.Dispose();
        Labels.Dispose();
    }
}
