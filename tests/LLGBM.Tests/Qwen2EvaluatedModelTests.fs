module LLGBM.Tests.Qwen2EvaluatedModelTests

open Expecto
open LLGBM.Model
open LLGBM.Evaluation
open LLGBM.Tests.TestModels

[<Tests>]
let tests =
    testList "Qwen2EvaluatedModel" [
        test "Forward is the model's own; no adapter; the model's config and device" {
            use model = micro 81L
            let evaluated = Qwen2EvaluatedModel(model, "base") :> IEvaluatedModel
            use ids = randomIds 1L 64 2 5
            use mine = evaluated.Forward(ids, ForwardOptions())
            use theirs = model.Forward(ids, ForwardOptions())
            Expect.equal (maxAbsDiff mine.Logits theirs.Logits) 0.0 "logits"
            Expect.equal (evaluated.Name, evaluated.Adapter) ("base", null) "labels"
            Expect.equal evaluated.Config model.Config "config"
            Expect.equal evaluated.Device.``type`` model.Device.``type`` "device"
        }

        test "EvaluationMode switches to evaluation mode and restores the previous mode once" {
            use model = micro 82L
            let evaluated = Qwen2EvaluatedModel(model, "base") :> IEvaluatedModel

            for before in [ true; false ] do
                model.train before
                let handle = evaluated.EvaluationMode()
                Expect.isFalse model.training "inside"
                handle.Dispose()
                Expect.equal model.training before "restored"
                model.train (not before)
                handle.Dispose()
                Expect.equal model.training (not before) "a second dispose does nothing"
        }
    ]
