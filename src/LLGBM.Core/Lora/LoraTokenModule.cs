namespace LLGBM.Lora;

/// <summary>One low-rank LoRA module as a <see cref="LoraTokenLayout"/> records it.</summary>
/// <param name="Path">The module's state-dict path, e.g. <c>model.layers.3.self_attn.q_proj</c>.</param>
/// <param name="Rank">The rank r.</param>
/// <param name="OutFeatures">Output features of the adapted linear module (B is [out, r]).</param>
/// <param name="InFeatures">Input features of the adapted linear module (A is [r, in]).</param>
/// <param name="Scale">The scale of the low-rank product (alpha / r, or alpha / √r with rsLoRA), given to the modules
/// that detokenisation builds.</param>
public sealed record LoraTokenModule(string Path, int Rank, long OutFeatures, long InFeatures, double Scale);
