using LLGBM.Model;
using static TorchSharp.torch;

namespace LLGBM.Evaluation;

/// <summary>
/// What the evaluation harness runs: a forward pass with the <see cref="Qwen2ForCausalLM.Forward"/> contract and the
/// facts decoding needs. <see cref="Qwen2EvaluatedModel"/> is the base model itself; a model with an adapter applied
/// implements the same interface, so the harness evaluates either without change.
/// </summary>
public interface IEvaluatedModel
{
    /// <summary>The model's name as reported in results (e.g. the checkpoint directory's name).</summary>
    string Name { get; }

    /// <summary>The adapter applied to the base model as reported in results; null for the base model alone.</summary>
    string? Adapter { get; }

    /// <summary>The architecture (number of layers for the KV cache, vocabulary size).</summary>
    Qwen2Config Config { get; }

    /// <summary>The device of the parameters; inputs are created there.</summary>
    Device Device { get; }

    /// <summary>A forward pass on token ids [B, T] with the same inputs, outputs and ownership as <see cref="Qwen2ForCausalLM.Forward"/>.</summary>
    Qwen2Output Forward(Tensor inputIds, ForwardOptions options);

    /// <summary>Switches every module to evaluation mode until the returned handle is disposed, which restores the previous mode.</summary>
    IDisposable EvaluationMode();
}
