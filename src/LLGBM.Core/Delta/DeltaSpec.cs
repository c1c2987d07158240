using System.Globalization;

namespace LLGBM.Delta;

/// <summary>How the hidden state of a probe's tokens is pooled into one vector.</summary>
public enum DeltaPooling
{
    /// <summary>The hidden state of the last real (non-padding) token, as in Delta Activations.</summary>
    LastToken,

    /// <summary>The mean of the hidden states over the real tokens.</summary>
    MeanOverRealTokens,
}

/// <summary>How the pooled vectors of several layers are combined.</summary>
public enum LayerCombination
{
    /// <summary>Concatenated in the order of <see cref="DeltaSpec.Layers"/> (width layers × H).</summary>
    Concatenate,

    /// <summary>Averaged (width H).</summary>
    Average,
}

/// <summary>
/// What a delta activation measures: which hidden states, how they are pooled over tokens and combined over layers,
/// an optional fixed random projection, and the probe length limit.
/// </summary>
public sealed record DeltaSpec
{
    /// <summary>
    /// Indices into <c>Qwen2Output.HiddenStates</c> (0 the embeddings, i the output of layer i − 1, N the final-norm
    /// state; negative counts from the end, −1 the final-norm state). Null (the default) uses the final-norm state alone.
    /// </summary>
    public IReadOnlyList<int>? Layers { get; init; }

    /// <summary>How several layers are combined (default: concatenation).</summary>
    public LayerCombination Combination { get; init; } = LayerCombination.Concatenate;

    /// <summary>Token pooling (default: the last real token).</summary>
    public DeltaPooling Pooling { get; init; } = DeltaPooling.LastToken;

    /// <summary>
    /// When set, the delta is multiplied by a fixed random matrix R [D, dim] with entries N(0, 1) / √dim drawn with
    /// <see cref="ProjectionSeed"/>; linear, so a zero delta stays zero.
    /// </summary>
    public int? ProjectionDim { get; init; }

    /// <summary>Seed of the projection matrix.</summary>
    public long ProjectionSeed { get; init; }

    /// <summary>Longest probe in tokens; longer probes keep their last tokens (truncation from the left).</summary>
    public int MaxProbeLength { get; init; } = 256;

    /// <summary>The default: final-norm state, last real token, no projection, 256 tokens.</summary>
    public static DeltaSpec Default { get; } = new();

    /// <summary>Checks the values; returns this.</summary>
    public DeltaSpec Validate()
    {
        if (Layers is { Count: 0 })
            throw new LlgbmException("Delta spec: the layer list is empty; leave it unset for the final-norm state.");
        if (ProjectionDim is < 1)
            throw new LlgbmException($"Delta spec: the projection dimension must be at least 1 (found {ProjectionDim}).");
        if (MaxProbeLength < 1)
            throw new LlgbmException($"Delta spec: the maximum probe length must be at least 1 (found {MaxProbeLength}).");
        return this;
    }

    /// <summary>
    /// A string naming every setting, for cache keys: e.g. <c>layers=final;combine=concat;pool=last;proj=none;maxlen=256</c>.
    /// Equal specs give equal keys and different specs different keys.
    /// </summary>
    public string Key()
    {
        var layers = Layers is null ? "final" : string.Join(",", Layers.Select(l => l.ToString(CultureInfo.InvariantCulture)));
        var combine = Combination == LayerCombination.Concatenate ? "concat" : "mean";
        var pool = Pooling == DeltaPooling.LastToken ? "last" : "mean";
        var proj = ProjectionDim is { } d ? $"{d}@{ProjectionSeed}" : "none";
        return $"layers={layers};combine={combine};pool={pool};proj={proj};maxlen={MaxProbeLength}";
    }

    /// <summary>Parses a layer list such as <c>"-1"</c> or <c>"2,4,-1"</c>.</summary>
    public static IReadOnlyList<int> ParseLayers(string text)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0)
            throw new LlgbmException("Layers: expected comma-separated hidden-state indices, e.g. 2,-1.");
        return [.. parts.Select(p => int.TryParse(p, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var i)
            ? i : throw new LlgbmException($"Layers: \"{p}\" is not an integer hidden-state index."))];
    }
}
