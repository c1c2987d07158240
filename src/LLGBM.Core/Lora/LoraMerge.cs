using LLGBM.Model;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LLGBM.Lora;

/// <summary>
/// Folds a LoRA adapter into the weights of a base model: W ← W + scale · B · A, as PEFT merges one
/// (src/peft/tuners/lora/layer.py).
/// </summary>
public static class LoraMerge
{
    /// <summary>
    /// Adds every module's ΔW (scale · B · A, or its dense ΔW) to the weight of the linear module it adapts, in place
    /// and without gradients, so that the model alone computes what the base model computes with the adapter applied
    /// functionally (up to rounding). ΔW is formed in float32 (float64 for a float64 model) and the sum rounded once to
    /// the weight's dtype. The adapter is validated against the model before any weight changes; it is neither changed
    /// nor disposed. A module whose merged weight would hold NaN or ±infinity stops the merge with an error naming it
    /// (the modules before it are then already merged: discard the model).
    /// </summary>
    /// <exception cref="LlgbmException">The adapter is batched, or a key or shape does not fit the model.</exception>
    /// <exception cref="NonFiniteException">A merged weight is not finite.</exception>
    public static void IntoBase(Qwen2ForCausalLM model, LoraSet adapter)
    {
        if (adapter.IsBatched)
            throw new LlgbmException($"LoRA merge: the set holds {adapter.Count} per-example adapters; merge one adapter at a time.");
        adapter.ValidateFor(model.Config, "LoRA merge");
        using var noGrad = no_grad();
        foreach (var (path, module) in adapter.Modules)
        {
            using var scope = NewDisposeScope();
            var weight = LinearAt(model, path).weight!;
            var compute = weight.dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
            using var scale = module.Scale.ToScalar();
            var delta = module.Delta is { } dense
                ? dense.to(compute, weight.device)
                : module.B!.to(compute, weight.device).matmul(module.A!.to(compute, weight.device)) * scale;
            var merged = weight.to_type(compute).add(delta, OwnedScalars.One).to_type(weight.dtype);
            FiniteCheck.Tensor(merged, $"LoRA merge: the merged weight of {path}");
            weight.copy_(merged);
        }
    }

    /// <summary>The linear module at a validated path such as <c>model.layers.3.self_attn.q_proj</c>.</summary>
    static Linear LinearAt(Qwen2ForCausalLM model, string path)
    {
        var (layerIndex, name) = LoraTarget.Parse(path)!.Value;
        var layer = model.model.layers[layerIndex];
        return name switch
        {
            "q_proj" => layer.self_attn.q_proj,
            "k_proj" => layer.self_attn.k_proj,
            "v_proj" => layer.self_attn.v_proj,
            "o_proj" => layer.self_attn.o_proj,
            "gate_proj" => layer.mlp.gate_proj,
            "up_proj" => layer.mlp.up_proj,
            _ => layer.mlp.down_proj,
        };
    }
}
