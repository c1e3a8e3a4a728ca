using TorchSharp;
namespace Cora.Tests;
[TestClass]
public class SmokeTests
{
    [TestMethod]
    public void TorchLoads()
    {
        var t = torch.ones(2, 3);
        Assert.AreEqual(6.0f, t.sum().item<float>());
    }
}
