using Microsoft.ML.Cora.CollaborativeFiltering;
using Microsoft.ML.Cora.Data;
using Microsoft.ML.Cora.Evaluation;
using Cora.Cli;

namespace Cora.Tests;

/// <summary><see cref="CfProbe"/>: u·i split into m·i (items alone) and (u − m)·i (the user's own part), checked by hand.</summary>
[TestClass]
public class CfProbeTests
{
    // Two users around m = (1, 0): u1 = m + (0, 1), u2 = m - (0, 1). Items i1 = (2, 0), i2 = (1, 3), i3 = (0, -3). Each user likes i1 only.
    // m.i: 2, 1, 0 for both users -> the liked item is first: item-only AUC 1.
    // (u - m).i: user 1: 0, 3, -3; user 2: 0, -3, 3 -> each positive (0) beats 2 of 4 negatives: 0.5.
    // u.i: user 1: 2, 4, -3; user 2: 2, -2, 3 -> each positive (2) beats 2 of 4 negatives: 0.5.
    private static (MatrixFactorization cf, List<Interaction> rows) HandMade()
    {
        var cf = MatrixFactorization.FromMatrices(new float[] { 1, 1, 1, -1 }, new long[] { 10, 20 }, new float[] { 2, 0, 1, 3, 0, -3 }, new long[] { 1, 2, 3 }, 2);
        var rows = new List<Interaction>();
        foreach (var user in new[] { 10, 20 })
            foreach (var item in new[] { 1, 2, 3 })
                rows.Add(new Interaction(user, item, item == 1, 0, true, Array.Empty<int>()));
        return (cf, rows);
    }

    [TestMethod]
    public void SplitsTheCfScoreIntoItemsAloneAndTheUsersOwnPart()
    {
        var (cf, rows) = HandMade();
        using var _ = cf;
        var p = CfProbe.Measure(cf, rows);
        Assert.AreEqual(6, p.Rows);
        Assert.AreEqual(1.0, p.ItemOnly.Auc, 1e-12);
        Assert.AreEqual(0.5, p.Personal.Auc, 1e-12);
        Assert.AreEqual(0.5, p.Full.Auc, 1e-12);
        Assert.AreEqual(1.0, p.ItemOnly.Uauc, 1e-12, "within each user too");
        Assert.AreEqual(Metrics.Auc(cf.ScoreRows(rows), rows.Select(r => r.Label).ToList()), p.Full.Auc, 1e-12, "u.i is the CF stage's own score");
        Assert.AreEqual(1.0, p.UserSpread, 1e-6, "|u - m| = 1 = |m|");
        Assert.AreEqual(1.0, p.UserRank, 1e-9, "the users vary along (0, 1) only");
        // Items over the rows (each twice) around their mean (1, 0): (1, 0), (0, 3), (-1, -3). Scatter [[2, 3], [3, 18]]: eigenvalues
        // 10 +- sqrt(73), shares q and 1 - q, effective rank exp(-(q ln q + (1 - q) ln(1 - q))).
        double q = (10 + Math.Sqrt(73)) / 20;
        Assert.AreEqual(Math.Exp(-(q * Math.Log(q) + (1 - q) * Math.Log(1 - q))), p.ItemRank, 1e-9);
    }

    [TestMethod]
    public void EffectiveRankCountsTheDirectionsRowsVaryIn()
    {
        using var _ = TorchSharp.torch.NewDisposeScope();
        // Four rows: +-(3, 0, 0) and +-(0, 3, 0) around (1, 1, 1): two directions, equal variance.
        var x = TorchSharp.torch.tensor(new float[] { 4, 1, 1, -2, 1, 1, 1, 4, 1, 1, -2, 1 }).view(4, 3);
        Assert.AreEqual(2.0, CfProbe.EffectiveRank(x), 1e-9);
        Assert.AreEqual(1.0, CfProbe.EffectiveRank(x.narrow(0, 0, 2)), 1e-9, "the first two rows differ along one direction");
        Assert.AreEqual(0.0, CfProbe.EffectiveRank(TorchSharp.torch.ones(5, 3)), "identical rows vary in no direction");
        var withCold = TorchSharp.torch.cat(new[] { x, TorchSharp.torch.zeros(3, 3) }, 0);
        Assert.AreEqual(2.0, CfProbe.EffectiveRank(withCold), 1e-9, "zero rows (cold fallback) are left out");
        Assert.AreEqual(0.0, CfProbe.EffectiveRank(TorchSharp.torch.cat(new[] { x.narrow(0, 0, 1), TorchSharp.torch.zeros(3, 3) }, 0)), "one known row");
    }

    [TestMethod]
    public void RefusesRowsWithoutBothLabels()
    {
        var (cf, rows) = HandMade();
        using var _ = cf;
        var e = Assert.ThrowsExactly<ArgumentException>(() => CfProbe.Measure(cf, rows.Where(r => !r.Label).ToList()));
        StringAssert.Contains(e.Message, "both kinds");
        StringAssert.Contains(e.Message, "0 positive");
    }
}
