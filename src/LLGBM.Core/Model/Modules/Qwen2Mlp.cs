using LLGBM.Lora;
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
    public override Tensor forward(Tensor x) => Forward(x, null, 0);

    /// <summary>The MLP of layer <paramref name="layerIndex"/> with the LoRA modules of <paramref name="lora"/> that target it.</summary>
    public Tensor Forward(Tensor x, LoraSet? lora, int layerIndex)
    {
        using var scope = NewDisposeScope();
        Tensor Project(Linear linear, string name, Tensor input) =>
            LoraLinear.Apply(input, linear, lora?.Get(LoraTarget.Path(layerIndex, name)), lora?.Dropout ?? 0, training, lora?.RowsPerAdapter ?? 1);
        var hidden = nn.functional.silu(Project(gate_proj, "gate_proj", x)) * Project(up_proj, "up_proj", x);
        return Project(down_proj, "down_proj", hidden).MoveToOuterDisposeScope();
    }
}
