using LLGBM.Model;
using static TorchSharp.torch;

namespace LLGBM.Evaluation;

/// <summary>The base model as an <see cref="IEvaluatedModel"/>: its own forward pass, no adapter. Does not own the model.</summary>
public sealed class Qwen2EvaluatedModel : IEvaluatedModel
{
    readonly Qwen2ForCausalLM model;

    /// <summary>Evaluates <paramref name="model"/>, reported under <paramref name="name"/>.</summary>
    public Qwen2EvaluatedModel(Qwen2ForCausalLM model, string name)
    {
        this.model = model;
        Name = name;
    }

    /// <inheritdoc/>
    public string Name { get; }

    /// <inheritdoc/>
    public string? Adapter => null;

    /// <inheritdoc/>
    public Qwen2Config Config => model.Config;

    /// <inheritdoc/>
    public Device Device => model.Device;

    /// <inheritdoc/>
    public Qwen2Output Forward(Tensor inputIds, ForwardOptions options) => model.Forward(inputIds, options);

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
