using static TorchSharp.torch;

namespace LLGBM.Model;

/// <summary>The result of a forward pass. Owns its tensors.</summary>
public sealed class Qwen2Output : IDisposable
{
    /// <summary>The final-norm hidden state [B, T, H] (the "last hidden state" of Delta Activations).</summary>
    public required Tensor HiddenLast { get; init; }

    /// <summary>Logits at the requested positions ([B, T, V], [B, 1, V] or [B, K, V]); null when none were asked for.</summary>
    public Tensor? Logits { get; init; }

    /// <summary>
    /// When asked for: N + 1 hidden states [B, T, H]: [0] the embeddings, [i] the output of layer i − 1, and the last
    /// one after the final norm (the same values as <see cref="HiddenLast"/>).
    /// </summary>
    public IReadOnlyList<Tensor>? HiddenStates { get; init; }

    /// <summary>Index [B] of the last real token of each row in this pass.</summary>
    public required Tensor LastTokenIndex { get; init; }

    /// <summary>The final-norm hidden state of each row's last real token, [B, H].</summary>
    public Tensor LastTokenHidden()
    {
        using var scope = NewDisposeScope();
        var index = LastTokenIndex.view(-1, 1, 1).expand(-1, 1, HiddenLast.shape[2]);
        return HiddenLast.gather(1, index).squeeze(1).MoveToOuterDisposeScope();
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        HiddenLast.Dispose();
        Logits?.Dispose();
        LastTokenIndex.Dispose();
        if (HiddenStates is not null)
            foreach (var h in HiddenStates)
                if (!ReferenceEquals(h, HiddenLast))
                    h.Dispose();
    }
}
