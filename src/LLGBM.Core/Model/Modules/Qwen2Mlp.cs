using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LLGBM.Model.Modules;

/// <summary>Qwen2 MLP: <c>down_proj(silu(gate_proj(x)) * up_proj(x))</c>, no biases.</summary>
public sealed class Qwen2Mlp : nn.Module<Tensor, Tensor>
{
    /// <summary>Gate projection H → I.</summary>
    public readonly Linear gate_proj;

    /// <summary>Up projection H → I.</summary>
    public readonly Linear up_proj;

    /// <summary>Down projection I → H.</summary>
    public readonly Linear down_proj;

    /// <summary>Creates the MLP of <paramref name="config"/>.</summary>
    public Qwen2Mlp(Qwen2Config config, Device? device = null, ScalarType dtype = ScalarType.Float32) : base(nameof(Qwen2Mlp))
    {
        gate_proj = nn.Linear(config.HiddenSize, config.IntermediateSize, hasBias: false, device: device, dtype: dtype);
        up_proj = nn.Linear(config.HiddenSize, config.IntermediateSize, hasBias: false, device: device, dtype: dtype);
        down_proj = nn.Linear(config.IntermediateSize, config.HiddenSize, hasBias: false, device: device, dtype: dtype);
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var hidden = nn.functional.silu(gate_proj.forward(x)) * up_proj.forward(x);
        return down_proj.forward(hidden).MoveToOuterDisposeScope();
    }
}
