/// The in-suite form of `llgbm bench scalars`: a few seconds of forward passes, sampled generation and a training step
/// on the micro preset while another thread forces collections and waits for finalizers without pause.
module LLGBM.Tests.ScalarStressTests

open Expecto
open LLGBM.Model
open LLGBM.Model.Modules
open LLGBM.Cli.Benchmarks
open TorchSharp

[<Tests>]
let tests =
    testSequenced
    <| testList "ScalarStress" [
        test "Forward, generation and a training step under continuous forced collections match their first round" {
            let result = ScalarStress.Run("micro", 3.0, minRounds = 4)
            Expect.isGreaterThanOrEqual result.Rounds 4 "several rounds ran"
            Expect.isGreaterThan result.Collections result.Rounds "collections were forced throughout"
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
