/// The in-suite form of `llgbm bench scalars`: ten seconds of forward passes, sampled generation, a training step and
/// optimiser steps on the tiny preset while another thread forces collections and waits for finalizers without pause
/// (long enough: with TorchSharp's own temporary scalars in the hot paths this crashed within 5–7 seconds), and the
/// optimiser with owned scalars against TorchSharp's AdamW.
module LLGBM.Tests.ScalarStressTests

open Expecto
open LLGBM.Model
open LLGBM.Model.Modules
open LLGBM.Experiments.Benchmarks
open TorchSharp

[<Tests>]
let tests =
    testSequenced
    <| testList "ScalarStress" [
        test "Forward, generation and a training step under continuous forced collections match their first round" {
            let result = ScalarStress.Run("tiny", 10.0, minRounds = 4)
            Expect.isGreaterThanOrEqual result.Rounds 4 "several rounds ran"
            Expect.isGreaterThan result.Collections result.Rounds "collections were forced throughout"
        }

        test "AdamWWithOwnedScalars (parameters, lr, decay) sets the weight decay, and TorchSharp's betas and eps" {
            use p = new TorchSharp.Modules.Parameter(torch.zeros ([| 2L |]))
            use o = new LLGBM.Training.AdamWWithOwnedScalars([ p ], 0.01, 0.1)

            let options =
                (Seq.exactlyOne o.ParamGroups :?> TorchSharp.Modules.AdamW.ParamGroup).Options

            Expect.equal options.LearningRate.Value 0.01 "lr"
            Expect.equal options.weight_decay.Value 0.1 "weight decay"
            Expect.equal options.beta1.Value 0.9 "beta1"
            Expect.equal options.beta2.Value 0.999 "beta2"
            Expect.equal options.eps.Value 1e-8 "eps"
        }

        test "AdamWWithOwnedScalars takes the same steps as TorchSharp's AdamW, bit for bit" {
            for amsgrad, maximize, weightDecay in [ false, false, 0.01; true, false, 0.0; false, true, 0.1 ] do
                use g = new torch.Generator(11UL)
                use start = torch.randn ([| 6L; 5L |], generator = g)
                use target = torch.randn ([| 6L; 5L |], generator = g)
                use ours = new TorchSharp.Modules.Parameter(start.clone ())
                use theirs = new TorchSharp.Modules.Parameter(start.clone ())

                use ourOptimizer =
                    new LLGBM.Training.AdamWWithOwnedScalars(
                        [ ours ],
                        lr = 0.05,
                        weight_decay = weightDecay,
                        amsgrad = amsgrad,
                        maximize = maximize
                    )

                use theirOptimizer =
                    torch.optim.AdamW(
                        [ theirs ],
                        lr = 0.05,
                        weight_decay = weightDecay,
                        amsgrad = amsgrad,
                        maximize = maximize
                    )

                for step in 1..7 do
                    for p, o in [ ours, ourOptimizer :> torch.optim.Optimizer; theirs, theirOptimizer ] do
                        use scope = torch.NewDisposeScope()
                        o.zero_grad ()
                        // A different learning rate each step, as the schedules set it.
                        for group in o.ParamGroups do
                            group.LearningRate <- 0.05 / float step

                        let loss: torch.Tensor = (p - target).pow(torch.tensor 3.0).abs().sum()
                        loss.backward ()
                        o.step () |> ignore

                    Expect.isTrue
                        ((ours.eq theirs).all().item<bool>())
                        $"step {step} (amsgrad {amsgrad}, maximize {maximize}, weight decay {weightDecay})"

                Expect.isFalse ((ours.eq start).all().item<bool>()) "the parameters moved"
        }

        test "Qwen2RmsNorm equals the former pow(2) and double-eps formula bit for bit" {
            use norm = new Qwen2RmsNorm(48L, 1e-6)
            use g = new torch.Generator(7UL)
            use _ = torch.no_grad ()
            norm.weight.copy_ (torch.randn ([| 48L |], generator = g)) |> ignore
            use x = torch.randn ([| 3L; 5L; 48L |], generator = g) * 3.0

            for dtype in [ torch.float32; torch.float64; torch.bfloat16 ] do
                use input = x.to_type dtype
                use scope = torch.NewDisposeScope()
                // The formula as it was written before the scalars were made explicit: x32.pow(2) with an int scalar,
                // + eps with a double one.
                use two = (2).ToScalar()
                use eps = (1e-6).ToScalar()
                let x32: torch.Tensor = input.to_type torch.float32
                let variance: torch.Tensor = x32.pow(two).mean([| -1L |], keepdim = true)
                let former = norm.weight * (x32 * variance.add(eps).rsqrt()).to_type dtype
                let now = norm.forward input
                Expect.isTrue ((now.eq former).all().item<bool>()) $"identical for {dtype}"
        }
    ]
