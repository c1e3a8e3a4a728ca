using Cora.Cli;
using Microsoft.ML.Cora.Methods;

namespace Cora.Tests;

/// <summary><see cref="GeneratorProbe"/>: distances between the generator's unit-norm A_b, zero exactly where the CF token cannot vary.</summary>
[TestClass]
public class GeneratorProbeTests
{
    [TestMethod]
    public void TheProbeSeesTheCfTokenAndReadsZeroWhereItCannotVary()
    {
        using var model = Slice.Model(CoraMethod.Cora);
        var rows = Slice.Valid.Where((_, i) => i % (Slice.Valid.Count / 60) == 0).Take(60).ToList();   // spread over users
        Assert.IsTrue(rows.Select(r => r.UserId).Distinct().Count() > 2 && rows.Select(r => r.ItemId).Distinct().Count() > 2, "the probe rows must vary");
        var p = GeneratorProbe.Measure(model, rows);
        Assert.AreEqual(60, p.Rows);
        foreach (var (name, v) in new[] { ("spread", p.Spread), ("users shuffled", p.UserShuffled), ("items zeroed", p.ItemsZeroed) })
            Assert.IsTrue(v > 1e-5 && v <= 2, $"{name} = {v}: a freshly initialised generator already reads its input a little");

        // One row repeated: every A_b is the same, and the shuffled users are the same user.
        var same = Enumerable.Repeat(rows[0], 10).ToList();
        var q = GeneratorProbe.Measure(model, same);
        Assert.AreEqual(0, q.Spread, 1e-6);
        Assert.AreEqual(0, q.UserShuffled, 1e-6);
        Assert.AreEqual(p.ItemsZeroed > 0, q.ItemsZeroed > 0, "zeroing the item still moves A_b");
        Assert.IsFalse(model.Trainable.training, "the probe leaves the mode as it was");
    }

    [TestMethod]
    public void TheProbeRefusesModelsWithoutAGeneratorAndSingleRows()
    {
        using (var mf = Slice.Model(CoraMethod.Mf))
            StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => GeneratorProbe.Measure(mf, Slice.Valid.Take(5).ToList())).Message, "Only the cora method");
        using var cora = Slice.Model(CoraMethod.Cora);
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => GeneratorProbe.Measure(cora, Slice.Valid.Take(1).ToList())).Message, "at least 2 rows");
    }
}
