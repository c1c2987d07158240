using LLGBM.Lora;
using LLGBM.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace LLGBM.Training;

/// <summary>
/// The logit-KL tether: KL(teacher ‖ student) between the next-token distributions of two sets of logits, per
/// position, averaged over the positions a mask selects. Differentiable in both logits; inputs are never disposed.
/// </summary>
public static class LogitKl
{
    /// <summary>
    /// KL(teacher ‖ student) = Σ_v p_t(v) (log p_t(v) − log p_s(v)) with p = softmax(logits / τ) over the last
    /// dimension, computed with log_softmax in float32 (float64 logits stay float64), multiplied by τ² (as in
    /// distillation, so gradients keep their size across temperatures), and averaged over the positions where
    /// <paramref name="mask"/> is 1 (all positions when it is null). Logits are [B, T, V] (any leading shape works
    /// without a mask); the mask [B, T] holds 1 for positions to count and 0 for the rest. With a mask that selects no
    /// position the result is 0. Not symmetric in its arguments; invariant to adding a constant to all logits of a
    /// position.
    /// </summary>
    public static Tensor Divergence(Tensor logitsStudent, Tensor logitsTeacher, Tensor? mask = null, double temperature = 1.0)
    {
        if (!logitsStudent.shape.SequenceEqual(logitsTeacher.shape) || logitsStudent.dim() == 0)
            throw new LlgbmException(
                $"LogitKl: student and teacher logits must have the same shape; found [{string.Join(", ", logitsStudent.shape)}] and " +
                $"[{string.Join(", ", logitsTeacher.shape)}].");
        if (mask is not null && !mask.shape.SequenceEqual(logitsStudent.shape[..^1]))
            throw new LlgbmException(
                $"LogitKl: the mask must have the logits' shape without the vocabulary dimension, [{string.Join(", ", logitsStudent.shape[..^1])}]; " +
                $"found [{string.Join(", ", mask.shape)}].");
        if (!(temperature > 0))
            throw new LlgbmException($"LogitKl: the temperature must be positive; found {temperature}.");
        using var scope = NewDisposeScope();
        var dtype = logitsStudent.dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
        using var temperatureScalar = temperature.ToScalar();
        var logStudent = (logitsStudent.to_type(dtype) / temperatureScalar).log_softmax(-1);
        var logTeacher = (logitsTeacher.to_type(dtype) / temperatureScalar).log_softmax(-1);
        using var temperatureSquared = (temperature * temperature).ToScalar();
        var perPosition = (logTeacher.exp() * (logTeacher - logStudent)).sum(-1) * temperatureSquared;
        if (mask is null)
            return perPosition.mean().MoveToOuterDisposeScope();
        var weights = mask.to_type(dtype);
        using var one = 1.ToScalar();
        return ((perPosition * weights).sum() / weights.sum().clamp_min(one)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The tether between the base model with <paramref name="studentLora"/> (a generated adapter; gradients flow into
    /// its tensors) and with <paramref name="teacherLora"/> (run under no_grad): both forwards on
    /// <paramref name="ids"/> [B, T] with the attention mask <paramref name="mask"/> [B, T], then
    /// <see cref="Divergence"/> over the positions the mask marks real. A null adapter means the bare base model.
    /// </summary>
    public static Tensor Between(Qwen2ForCausalLM model, Tensor ids, Tensor? mask, LoraSet? studentLora, LoraSet? teacherLora, double temperature = 1.0)
    {
        using var scope = NewDisposeScope();
        Tensor teacherLogits;
        using (no_grad())
        {
            using var teacher = model.Forward(ids, new ForwardOptions { AttentionMask = mask, Lora = teacherLora });
            teacherLogits = teacher.Logits!.detach();
        }
        using var student = model.Forward(ids, new ForwardOptions { AttentionMask = mask, Lora = studentLora });
        return Divergence(student.Logits!, teacherLogits, mask, temperature).MoveToOuterDisposeScope();
    }
}
