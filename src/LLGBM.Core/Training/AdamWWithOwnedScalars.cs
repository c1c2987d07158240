using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LLGBM.Training;

/// <summary>
/// TorchSharp's AdamW (Loshchilov and Hutter, "Decoupled Weight Decay Regularization", ICLR 2019) with a step that
/// owns its scalars. TorchSharp's own <c>AdamW.step</c> turns the learning rate, betas, eps and bias corrections into
/// temporary scalars for every parameter on every step, which a garbage collection can free while libtorch still reads
/// them (see <see cref="OwnedScalars"/>). This step makes the same native calls, in the same order and with the same
/// values, from <c>using</c> scalars; state, parameter groups and <c>save_state_dict</c>/<c>load_state_dict</c> are
/// the base class's, so checkpoints of either load into the other. Per parameter p with gradient g at step t:
/// p ← p·(1 − lr·λ); m ← β₁m + (1 − β₁)g; v ← β₂v + (1 − β₂)g²;
/// p ← p − lr/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε)
/// (with amsgrad, v is replaced by the running maximum of v).
/// </summary>
public sealed class AdamWWithOwnedScalars : AdamW
{
    /// <summary>
    /// AdamW over <paramref name="parameters"/> with learning rate <paramref name="lr"/> and decoupled weight decay
    /// <paramref name="weight_decay"/>; the other arguments and their defaults are TorchSharp's. (The weight decay comes
    /// third, not after the betas as in TorchSharp's constructor, so that <c>(parameters, lr, decay)</c> means what it
    /// says.)
    /// </summary>
    public AdamWWithOwnedScalars(
        IEnumerable<Parameter> parameters, double lr, double weight_decay, double beta1 = 0.9, double beta2 = 0.999,
        double eps = 1e-8, bool amsgrad = false, bool maximize = false)
        : base(parameters, lr, beta1, beta2, eps, weight_decay, amsgrad, maximize) { }

    /// <inheritdoc/>
    public override Tensor step(Func<Tensor>? closure = null) =>
        _step<ParamGroup>(
            group =>
            {
                var options = group.Options;
                var beta1 = options.beta1!.Value;
                var beta2 = options.beta2!.Value;
                var weightDecay = options.weight_decay!.Value;
                var amsgrad = options.amsgrad!.Value;
                var maximize = options.maximize!.Value;
                var lr = options.LearningRate!.Value;
                using var decay = (1.0 - lr * weightDecay).ToScalar();
                using var beta1Scalar = beta1.ToScalar();
                using var beta2Scalar = beta2.ToScalar();
                using var oneMinusBeta1 = (1.0 - beta1).ToScalar();
                using var oneMinusBeta2 = (1.0 - beta2).ToScalar();
                using var eps = options.eps!.Value.ToScalar();
                foreach (var parameter in group.Parameters)
                {
                    var state = (State)_state[parameter.Handle];
                    var grad = parameter.grad;
                    if (grad is null)
                        continue;
                    if (maximize)
                        grad = grad.neg();
                    state.step++;
                    parameter.mul_(decay);
                    var biasCorrection1 = 1.0 - Math.Pow(beta1, state.step);
                    var biasCorrection2 = 1.0 - Math.Pow(beta2, state.step);
                    state.exp_avg.mul_(beta1Scalar).add_(grad, oneMinusBeta1);
                    state.exp_avg_sq.mul_(beta2Scalar).addcmul_(grad, grad, oneMinusBeta2);
                    using var sqrtCorrection2 = Math.Sqrt(biasCorrection2).ToScalar();
                    Tensor denominator;
                    if (amsgrad)
                    {
                        var previous = state.max_exp_avg_sq;
                        state.max_exp_avg_sq = maximum(previous, state.exp_avg_sq).DetachFromDisposeScope();
                        previous.Dispose();
                        denominator = state.max_exp_avg_sq.sqrt().div(sqrtCorrection2).add_(eps, OwnedScalars.One);
                    }
                    else
                    {
                        denominator = state.exp_avg_sq.sqrt().div(sqrtCorrection2).add_(eps, OwnedScalars.One);
                    }
                    using var stepSize = (0.0 - lr / biasCorrection1).ToScalar();
                    parameter.addcdiv_(state.exp_avg, denominator, stepSize);
                }
            },
            closure
        );
}
