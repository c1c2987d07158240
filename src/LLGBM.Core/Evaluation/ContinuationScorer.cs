using LLGBM.Model;
using static TorchSharp.torch;

namespace LLGBM.Evaluation;

/// <summary>
/// Log-likelihoods of continuations given their contexts, log p(c₁ … c_K | x) = Σ_j log p(c_j | x, c_&lt;j), computed in
/// padded batches with logits only at the positions that predict continuation tokens.
/// </summary>
public static class ContinuationScorer
{
    /// <summary>
    /// The summed log-likelihood of each request's continuation, in request order. Requests are batched in the given
    /// order, <paramref name="batchSize"/> sequences (context followed by continuation) at a time, padded on
    /// <paramref name="padding"/>'s side and masked; <paramref name="progress"/> gets the number of requests done and
    /// the total after each batch. Runs without gradients and in evaluation mode.
    /// </summary>
    /// <exception cref="NonFiniteException">A log-likelihood is NaN or infinite, so no choice can be scored.</exception>
    public static double[] LogLikelihoods(
        IEvaluatedModel model, IReadOnlyList<ContinuationRequest> requests, int batchSize, PaddingSide padding = PaddingSide.Right,
        Action<int, int>? progress = null)
    {
        if (batchSize <= 0)
            throw new LlgbmException($"Continuation scoring: the batch size must be positive, found {batchSize}.");
        var vocab = model.Config.VocabSize;
        for (var i = 0; i < requests.Count; i++)
        {
            var (context, continuation) = (requests[i].Context, requests[i].Continuation);
            if (context.Count == 0 || continuation.Count == 0)
                throw new LlgbmException(
                    $"Continuation scoring: request {i} has {context.Count} context and {continuation.Count} continuation tokens; both need at least one.");
            if (context.Concat(continuation).FirstOrDefault(t => t < 0 || t >= vocab, -1) is var bad && bad != -1)
                throw new LlgbmException($"Continuation scoring: request {i} holds token id {bad}, outside the model's vocabulary [0, {vocab}).");
        }

        using var noGrad = no_grad();
        using var mode = model.EvaluationMode();
        var scores = new double[requests.Count];
        for (var start = 0; start < requests.Count; start += batchSize)
        {
            var count = Math.Min(batchSize, requests.Count - start);
            var batch = Enumerable.Range(start, count).Select(i => requests[i]).ToArray();
            ScoreBatch(model, batch, padding).CopyTo(scores, start);
            for (var i = start; i < start + count; i++)
                FiniteCheck.Number(scores[i], $"Continuation scoring: the log-likelihood of request {i} (the model's output is not finite)");
            progress?.Invoke(start + count, requests.Count);
        }
        return scores;
    }

    static double[] ScoreBatch(IEvaluatedModel model, ContinuationRequest[] batch, PaddingSide padding)
    {
        using var scope = NewDisposeScope();
        var rows = batch.Length;
        var length = batch.Max(r => r.Context.Count + r.Continuation.Count);
        var width = batch.Max(r => r.Continuation.Count);
        var ids = new long[rows * length];
        var mask = new long[rows * length];
        var index = new long[rows * width];
        var targets = new long[rows * width];
        var valid = new float[rows * width];
        for (var b = 0; b < rows; b++)
        {
            var (context, continuation) = (batch[b].Context, batch[b].Continuation);
            var real = context.Count + continuation.Count;
            var offset = padding == PaddingSide.Left ? length - real : 0;
            for (var t = 0; t < real; t++)
            {
                ids[b * length + offset + t] = t < context.Count ? context[t] : continuation[t - context.Count];
                mask[b * length + offset + t] = 1;
            }
            for (var j = 0; j < width; j++)
            {
                var inside = j < continuation.Count;
                // The logits at position p predict the token at p + 1; unused slots point at a real position and are masked.
                index[b * width + j] = offset + (inside ? context.Count + j - 1 : 0);
                targets[b * width + j] = inside ? continuation[j] : 0;
                valid[b * width + j] = inside ? 1 : 0;
            }
        }
        var device = model.Device;
        using var output = model.Forward(
            tensor(ids, [rows, length], device: device),
            new ForwardOptions
            {
                AttentionMask = tensor(mask, [rows, length], device: device),
                Logits = LogitPositions.At(tensor(index, [rows, width], device: device)),
            });
        var logProbs = output.Logits!.to_type(ScalarType.Float32).log_softmax(-1)
            .gather(-1, tensor(targets, [rows, width], device: device).unsqueeze(-1)).squeeze(-1);
        var sums = (logProbs.to_type(ScalarType.Float64) * tensor(valid, [rows, width], device: device).to_type(ScalarType.Float64)).sum(-1);
        return sums.cpu().data<double>().ToArray();
    }
}
