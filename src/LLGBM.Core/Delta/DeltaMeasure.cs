using System.Text.Json;
using LLGBM.Checkpoints;
using LLGBM.Model;
using LLGBM.Text;

namespace LLGBM.Delta;

/// <summary>
/// What a delta measures and on which probes, apart from any model: the kind, the probe set and the spec. It builds the
/// matching <see cref="IDeltaEmbedder"/> for a base model and names its inputs for cache keys, so that the delta cache
/// and the command line treat both kinds alike.
/// </summary>
public abstract class DeltaMeasure
{
    DeltaMeasure() { }

    /// <summary>The delta activation of <paramref name="probes"/> under <paramref name="spec"/> (default <see cref="DeltaSpec.Default"/>).</summary>
    public static DeltaMeasure Activation(ProbeSet probes, DeltaSpec? spec = null) => new ActivationMeasure(probes, (spec ?? DeltaSpec.Default).Validate());

    /// <summary>The delta meaning of <paramref name="probes"/> under <paramref name="spec"/> (default <see cref="MeaningDeltaSpec.Default"/>).</summary>
    public static DeltaMeasure Meaning(MeaningProbeSet probes, MeaningDeltaSpec? spec = null) =>
        new MeaningMeasure(probes, (spec ?? MeaningDeltaSpec.Default).Validate());

    /// <summary>The kind of delta.</summary>
    public abstract DeltaKind Kind { get; }

    /// <summary>The probe set's name.</summary>
    public abstract string ProbeSetName { get; }

    /// <summary>The number of probes (pairs for the delta meaning).</summary>
    public abstract int ProbeCount { get; }

    /// <summary>
    /// The settings as a string for cache keys: <see cref="DeltaSpec.Key"/> for the delta activation (unchanged, so keys
    /// of existing caches stay valid), <see cref="MeaningDeltaSpec.Key"/> (which starts with <c>kind=meaning</c>) for the
    /// delta meaning; the two never coincide.
    /// </summary>
    public abstract string SpecKey { get; }

    /// <summary>Whether the probes are text, so that the base model's tokenizer is needed.</summary>
    public abstract bool NeedsTokenizer { get; }

    /// <summary>
    /// The content hash of the probes as the base model reads them: for the delta activation
    /// <see cref="DeltaCache.ProbesHash"/> of the token ids and texts; for the delta meaning the hash of the kind, every
    /// pair's prompt and continuation text and their token ids.
    /// </summary>
    public abstract string ProbesHash(ITokenizer? tokenizer);

    /// <summary>The embedder of this measure for <paramref name="model"/>, whose tokenizer is <paramref name="tokenizer"/>.</summary>
    public abstract IDeltaEmbedder CreateEmbedder(Qwen2ForCausalLM model, ITokenizer? tokenizer);

    /// <summary>A one-line description for reports, e.g. <c>generic-5, layers=final;…</c>.</summary>
    public override string ToString() => $"{ProbeSetName}, {SpecKey}";

    static ITokenizer Required(ITokenizer? tokenizer, string what) =>
        tokenizer ?? throw new LlgbmException($"{what} holds texts; the base model's tokenizer is needed to turn them into token ids.");

    sealed class ActivationMeasure(ProbeSet probes, DeltaSpec spec) : DeltaMeasure
    {
        public override DeltaKind Kind => DeltaKind.Activation;

        public override string ProbeSetName => probes.Name;

        public override int ProbeCount => probes.Count;

        public override string SpecKey => spec.Key();

        public override bool NeedsTokenizer => probes.Texts is not null;

        public override string ProbesHash(ITokenizer? tokenizer) => DeltaCache.ProbesHash(probes.Tokenize(tokenizer), probes.Texts);

        public override IDeltaEmbedder CreateEmbedder(Qwen2ForCausalLM model, ITokenizer? tokenizer) =>
            new DeltaEmbedder(model, probes.Tokenize(tokenizer), spec);
    }

    sealed class MeaningMeasure(MeaningProbeSet probes, MeaningDeltaSpec spec) : DeltaMeasure
    {
        public override DeltaKind Kind => DeltaKind.Meaning;

        public override string ProbeSetName => probes.Name;

        public override int ProbeCount => probes.Count;

        public override string SpecKey => spec.Key();

        public override bool NeedsTokenizer => true;

        public override string ProbesHash(ITokenizer? tokenizer)
        {
            var tokens = MeaningDeltaEmbedder.Tokenize(Required(tokenizer, $"Meaning probe set '{probes.Name}'"), probes);
            return ContentHash.OfText(JsonSerializer.Serialize(new
            {
                kind = "meaning",
                prompts = probes.Probes.Select(p => p.Prompt),
                continuations = probes.Probes.Select(p => p.Continuation),
                prompt_ids = tokens.Select(t => t.Context),
                continuation_ids = tokens.Select(t => t.Continuation),
            }));
        }

        public override IDeltaEmbedder CreateEmbedder(Qwen2ForCausalLM model, ITokenizer? tokenizer) =>
            new MeaningDeltaEmbedder(model, Required(tokenizer, $"Meaning probe set '{probes.Name}'"), probes, spec);
    }
}
