using LLGBM.Lora;
using LLGBM.Model;
using static TorchSharp.torch;

namespace LLGBM.Evaluation;

/// <summary>
/// The base model as an <see cref="IEvaluatedModel"/>, alone or with a LoRA adapter applied functionally in every
/// forward pass. Owns neither the model nor the adapter.
/// </summary>
public sealed class Qwen2EvaluatedModel : IEvaluatedModel
{
    readonly Qwen2ForCausalLM model;
    readonly LoraSet? lora;

    /// <summary>
    /// Evaluates <paramref name="model"/>, reported under <paramref name="name"/>; with <paramref name="lora"/> the
    /// adapter is applied and reported as <paramref name="adapter"/>.
    /// </summary>
    public Qwen2EvaluatedModel(Qwen2ForCausalLM model, string name, LoraSet? lora = null, string? adapter = null)
    {
        this.model = model;
        this.lora = lora?.ValidateFor(model.Config);
        Name = name;
        Adapter = lora is null ? null : adapter ?? "adapter";
    }

    /// <inheritdoc/>
    public string Name { get; }

    /// <inheritdoc/>
    public string? Adapter { get; }

    /// <inheritdoc/>
    public Qwen2Config Config => model.Config;

    /// <inheritdoc/>
    public Device Device => model.Device;

    /// <inheritdoc/>
    public Qwen2Output Forward(Tensor inputIds, ForwardOptions options) =>
        model.Forward(inputIds, lora is null ? options : options with { Lora = lora });

    /// <inheritdoc/>
    public IDisposable EvaluationMode()
    {
        var wasTraining = model.training;
        model.eval();
        return new Restore(() => model.train(wasTraining));
    }

    sealed class Restore(Action restore) : IDisposable
    {
        bool done;

        public void Dispose()
        {
            if (done)
                return;
            done = true;
            restore();
        }
    }
}
