module LLGBM.Tests.PrincipalComponentsTests

open Expecto
open LLGBM.Algebra

[<Tests>]
let tests =
    testList "PrincipalComponents" [
        test "four points around (5, 7) with a constant third coordinate: the axes, their variance shares, the signs" {
            // Centred: (2, 0), (-2, 0), (0, 1), (0, -1); XᵀX = diag(8, 2, 0), so PC1 = x (8/10 of the variance) and
            // PC2 = y (2/10), each with its largest loading positive.
            let rows = [|
                [| 7.0f; 7.0f; 3.0f |]
                [| 3.0f; 7.0f; 3.0f |]
                [| 5.0f; 8.0f; 3.0f |]
                [| 5.0f; 6.0f; 3.0f |]
            |]

            let p = PrincipalComponents.project 2 rows
            Expect.equal p.Explained.Length 2 "two components"
            Expect.floatClose Accuracy.high (p.Explained[0]) 0.8 "PC1 share"
            Expect.floatClose Accuracy.high (p.Explained[1]) 0.2 "PC2 share"

            let expected = [| [| 2.0; 0.0 |]; [| -2.0; 0.0 |]; [| 0.0; 1.0 |]; [| 0.0; -1.0 |] |]

            for i in 0..3 do
                for c in 0..1 do
                    Expect.floatClose Accuracy.high (p.Coordinates[i][c]) (expected[i][c]) $"row {i}, PC{c + 1}"
        }

        test "a flipped data set gets the same signs: the largest loading is positive" {
            // Mirroring x flips the SVD's sign freedom, not the projection: the component is still +x, so the first
            // row is now at -2.
            let rows = [| [| -2.0f; 0.0f |]; [| 2.0f; 0.0f |]; [| 0.0f; 1.0f |]; [| 0.0f; -1.0f |] |]
            let p = PrincipalComponents.project 1 rows
            Expect.equal p.Explained.Length 1 "one component asked for"
            Expect.floatClose Accuracy.high (p.Coordinates[0][0]) -2.0 "first row on PC1"
            Expect.floatClose Accuracy.high (p.Coordinates[1][0]) 2.0 "second row on PC1"
        }

        test "no more components than the rows span, and an error for ragged rows" {
            let p = PrincipalComponents.project 5 [| [| 1.0f; 0.0f |]; [| 0.0f; 1.0f |] |]
            Expect.equal p.Explained.Length 2 "min(n, d) = 2"
            Expect.floatClose Accuracy.high (Array.sum p.Explained) 1.0 "the shares add up to one"

            Expect.throws
                (fun () -> PrincipalComponents.project 2 [| [| 1.0f |]; [| 1.0f; 2.0f |] |] |> ignore)
                "ragged"
        }
    ]
